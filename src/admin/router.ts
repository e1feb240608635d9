/**
 * The admin server's router: `METHOD /literal/:param/...` patterns, matched segment by segment.
 * Small on purpose: a handful of routes today (registration API), a few more later (metrics,
 * dashboard). Routes are tried in registration order; a literal segment and a `:param` segment may
 * compete, so register the more specific route first (`/v1/pools/:pool/lookup` is distinct from
 * `/v1/pools/:pool/backends` by its literal, so order rarely matters).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AdminError, type Awaitable } from './api.js';

export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH';

export interface AdminRequest {
  readonly method: HttpMethod;
  /** The request path as sent (still percent-encoded), without the query. */
  readonly path: string;
  /** Decoded `:param` values. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** The client's address (`127.0.0.1`), for log lines saying who changed what. */
  readonly remoteAddress: string;
  /**
   * Reads and parses the JSON body: content type checked (415), size limited while streaming
   * (411/413), UTF-8 and JSON syntax checked (400). Throws `AdminError`. Keys repeated in one
   * object are returned, not thrown, so the route reports them with every other problem at once.
   */
  json(): Promise<JsonBody>;
}

export interface JsonBody {
  /** The parsed value (for a repeated key, JSON.parse keeps the last value). */
  readonly value: unknown;
  /** Paths of keys that appear more than once in their object. */
  readonly duplicateKeys: readonly (readonly (string | number)[])[];
}

export interface AdminResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** undefined = no body (204). */
  readonly body?: string | Buffer;
}

export type AdminHandler = (request: AdminRequest) => Awaitable<AdminResponse>;

/**
 * Where a set of routes is installed (AdminServer implements it). Route modules such as
 * pool-routes.ts take this instead of the server, so the server may import them without a cycle.
 */
export interface RouteTable {
  route(method: HttpMethod, pattern: string, handler: AdminHandler): unknown;
}

/** A JSON response (`application/json; charset=utf-8`, pretty enough for curl: one trailing newline). */
export function jsonResponse(status: number, value: unknown, headers: Readonly<Record<string, string>> = {}): AdminResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: `${JSON.stringify(value)}\n`,
  };
}

/** Any other content (Prometheus text, HTML): later routes build these. */
export function textResponse(status: number, contentType: string, body: string | Buffer): AdminResponse {
  return { status, headers: { 'content-type': contentType }, body };
}

export function noContent(): AdminResponse {
  return { status: 204 };
}

type Segment = { readonly literal: string } | { readonly param: string };

interface Route {
  readonly method: HttpMethod;
  readonly pattern: string;
  readonly segments: readonly Segment[];
  readonly handler: AdminHandler;
}

export type RouteMatch =
  | { readonly kind: 'found'; readonly handler: AdminHandler; readonly params: Record<string, string> }
  /** The path exists but not for this method: 405 with `Allow`. */
  | { readonly kind: 'method-not-allowed'; readonly allowed: readonly string[] }
  | { readonly kind: 'not-found' };

const PARAM_NAME = /^:[A-Za-z][A-Za-z0-9]*$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9._~-]+$/;
const METHODS: readonly HttpMethod[] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'];

export class Router {
  readonly #routes: Route[] = [];

  /** Adds a route; throws on a malformed pattern or a duplicate (a programming error). */
  add(method: HttpMethod, pattern: string, handler: AdminHandler): void {
    if (!METHODS.includes(method)) throw new TypeError(`unsupported method ${String(method)}`);
    if (!pattern.startsWith('/')) throw new TypeError(`route pattern must start with "/": ${pattern}`);
    const segments: Segment[] = pattern
      .slice(1)
      .split('/')
      .map((part) => {
        if (PARAM_NAME.test(part)) return { param: part.slice(1) };
        if (LITERAL_SEGMENT.test(part)) return { literal: part };
        throw new TypeError(`bad segment "${part}" in route pattern ${pattern}`);
      });
    const shape = (s: readonly Segment[]): string => s.map((x) => ('param' in x ? ':' : x.literal)).join('/');
    if (this.#routes.some((route) => route.method === method && shape(route.segments) === shape(segments))) {
      throw new TypeError(`route ${method} ${pattern} is already registered`);
    }
    this.#routes.push({ method, pattern, segments, handler });
  }

  /**
   * Matches a raw (percent-encoded) path. A `:param` segment is percent-decoded; a segment that does
   * not decode is a 400 (thrown as AdminError), not a 404, so the client learns what is wrong.
   * HEAD is answered by GET routes (node:http omits the body).
   */
  match(method: string, rawPath: string): RouteMatch {
    const parts = rawPath === '/' ? [''] : rawPath.slice(1).split('/');
    const lookupMethod = method === 'HEAD' ? 'GET' : method;
    const allowed = new Set<string>();
    for (const route of this.#routes) {
      const params = matchSegments(route.segments, parts, rawPath);
      if (params === undefined) continue;
      if (route.method === lookupMethod) return { kind: 'found', handler: route.handler, params };
      allowed.add(route.method);
      if (route.method === 'GET') allowed.add('HEAD');
    }
    if (allowed.size > 0) return { kind: 'method-not-allowed', allowed: [...allowed] };
    return { kind: 'not-found' };
  }
}

function matchSegments(
  segments: readonly Segment[],
  parts: readonly string[],
  rawPath: string,
): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    const part = parts[i];
    if ('literal' in segment) {
      if (segment.literal !== part) return undefined;
    } else {
      if (part === '') return undefined;
      params[segment.param] = decodeSegment(part, rawPath);
    }
  }
  return params;
}

function decodeSegment(part: string, rawPath: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new AdminError(400, `path segment "${part}" is not valid percent-encoded UTF-8`, rawPath);
  }
}
