/**
 * Reading ringlb's `/metrics` in tests: a scrape over real HTTP (a fresh connection each, closed
 * with the response), a parser of the text exposition into samples, and a wait that re-scrapes
 * until a condition holds (bounded; for counts a worker thread adds a moment after the client saw
 * its connection close).
 */
import { request } from 'node:http';

export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** GET /metrics; rejects on a status other than 200. */
export function scrapeText(adminAddress: string, token: string | null = null): Promise<{ text: string; contentType: string }> {
  const colon = adminAddress.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: adminAddress.slice(0, colon).replace(/^\[|\]$/g, ''),
        port: Number(adminAddress.slice(colon + 1)),
        path: '/metrics',
        agent: false,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        timeout: 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (response.statusCode !== 200) reject(new Error(`GET /metrics: ${response.statusCode} ${text}`));
          else resolve({ text, contentType: String(response.headers['content-type']) });
        });
        response.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /metrics timed out')));
    req.on('error', reject);
    req.end();
  });
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample line of a text exposition (comments skipped); throws on a line it cannot read. */
export function parseMetrics(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

export class Scrape {
  readonly samples: readonly MetricSample[];
  readonly text: string;

  constructor(text: string) {
    this.text = text;
    this.samples = parseMetrics(text);
  }

  /** Samples of `name` whose labels include `labels`. */
  select(name: string, labels: Readonly<Record<string, string>> = {}): MetricSample[] {
    return this.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  }

  /** Sum of the selected samples (0 when none). */
  sum(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.select(name, labels).reduce((total, sample) => total + sample.value, 0);
  }

  /** The one sample matching; undefined when none; throws when several match. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    const selected = this.select(name, labels);
    if (selected.length > 1) throw new Error(`${selected.length} samples of ${name} match ${JSON.stringify(labels)}`);
    return selected[0]?.value;
  }
}

export async function scrape(adminAddress: string, token: string | null = null): Promise<Scrape> {
  return new Scrape((await scrapeText(adminAddress, token)).text);
}

/** Re-scrapes (every 50 ms) until `ready` holds; fails after `timeoutMs` with the last scrape's reason. */
export async function scrapeUntil(
  adminAddress: string,
  ready: (scrape: Scrape) => boolean,
  what: string,
  options: { token?: string | null; timeoutMs?: number } = {},
): Promise<Scrape> {
  const deadline = performance.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const current = await scrape(adminAddress, options.token ?? null);
    if (ready(current)) return current;
    if (performance.now() > deadline) {
      const ringlb = current.samples.filter((sample) => sample.name.startsWith('ringlb_') && sample.value !== 0);
      throw new Error(`not within ${options.timeoutMs ?? 10_000} ms: ${what}; non-zero ringlb samples: ${JSON.stringify(ringlb)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
