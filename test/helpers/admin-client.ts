/**
 * A small JSON client for ringlb's admin HTTP API in end-to-end tests, plus `adminAddress` to read
 * the listener's address from the `admin ready` log line (the config binds 127.0.0.1:0).
 *
 * Requests go through a keep-alive agent owned by the client, so hundreds of lookups reuse a few
 * sockets; `close()` destroys them (call it in after/finally so no socket outlives the test).
 */
import { Agent, request } from 'node:http';
import type { RinglbProcess } from './ringlb-process.js';

export interface AdminResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, or undefined for an empty body (204). */
  readonly body: unknown;
}

/** The body every admin error has: `{"error": "...", "path": "..."}`. */
export interface AdminErrorBody {
  readonly error: string;
  readonly path: string;
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
}

export interface LookupBody {
  readonly backend: { readonly backendId: string; readonly address: string; readonly slot: number } | null;
}

export interface RequestOptions {
  readonly body?: unknown;
  /** Raw request body text (sent as is); wins over `body`. */
  readonly rawBody?: string;
  /** Default: the client's token; `null` sends no Authorization header. */
  readonly token?: string | null;
  readonly timeoutMs?: number;
}

export class AdminClient {
  readonly #host: string;
  readonly #port: number;
  readonly #token: string | null;
  readonly #agent: Agent;

  /**
   * `address` is `host:port` as the `admin ready` line gives it; `maxSockets` (default 16) bounds
   * the requests in flight (a burst test raises it to send hundreds at once).
   */
  constructor(address: string, token: string | null = null, maxSockets = 16) {
    this.#agent = new Agent({ keepAlive: true, maxSockets });
    const colon = address.lastIndexOf(':');
    this.#host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    this.#port = Number(address.slice(colon + 1));
    this.#token = token;
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<AdminResponse> {
    const token = options.token === undefined ? this.#token : options.token;
    const text = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (text !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(text));
    }
    return new Promise((resolve, reject) => {
      const outgoing = request(
        { host: this.#host, port: this.#port, method, path, headers, agent: this.#agent, timeout: options.timeoutMs ?? 5000 },
        (response) => {
          let data = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (data += chunk));
          response.on('error', reject);
          response.on('end', () => {
            let body: unknown;
            try {
              body = data === '' ? undefined : JSON.parse(data);
            } catch {
              reject(new Error(`${method} ${path}: ${response.statusCode} with a non-JSON body ${JSON.stringify(data)}`));
              return;
            }
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
          });
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 5000} ms`)));
      outgoing.on('error', reject);
      outgoing.end(text);
    });
  }

  /** PUT a registration (or heartbeat). */
  register(pool: string, id: string, body: { address: string; weight?: number; ttlMs?: number }): Promise<AdminResponse> {
    return this.request('PUT', `/v1/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(id)}`, { body });
  }

  /** The backend id a new connection from `ip`:`port` would reach now, or null; throws on a non-200. */
  async lookup(pool: string, ip: string, port = 0): Promise<string | null> {
    const response = await this.request('GET', `/v1/pools/${encodeURIComponent(pool)}/lookup?ip=${ip}&port=${port}`);
    if (response.status !== 200) throw new Error(`lookup ${pool} ${ip}: ${response.status} ${JSON.stringify(response.body)}`);
    return (response.body as LookupBody).backend?.backendId ?? null;
  }

  /** Looks up every ip (at most `concurrency` requests in flight); result in the order of `ips`. */
  async lookupAll(pool: string, ips: readonly string[], concurrency = 16): Promise<Array<string | null>> {
    const results = new Array<string | null>(ips.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ips.length) {
        const index = next++;
        results[index] = await this.lookup(pool, ips[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ips.length) }, worker));
    return results;
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** The admin listener's `host:port`, from the `admin ready` line. */
export async function adminAddress(ringlb: RinglbProcess, timeoutMs = 10_000): Promise<string> {
  const line = await ringlb.waitForLine((l) => l.msg === 'admin ready', timeoutMs, 'admin ready');
  return String(line.address);
}

/** `count` distinct loopback client addresses 127.0.x.y (x ≥ 1, so none is 127.0.0.1). */
export function loopbackClients(count: number): string[] {
  const ips: string[] = [];
  for (let index = 0; index < count; index += 1) ips.push(`127.0.${1 + Math.floor(index / 250)}.${1 + (index % 250)}`);
  return ips;
}
