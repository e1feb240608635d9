/**
 * The v1 admin routes: pools, their backends, the registration API and lookups. Each handler
 * validates its input at the edge (every 400 names the bad field or parameter) and then makes one
 * `AdminApi` call; nothing here knows how the runtime stores anything.
 *
 *   GET    /healthz                          → 200 {"status":"ok"}
 *   GET    /v1/pools                         → 200 {"pools":[PoolView...]}
 *   GET    /v1/pools/:pool/backends          → 200 {"pool","backends":[BackendView...]}
 *   GET    /v1/pools/:pool/backends/:id      → 200 BackendView | 404
 *   PUT    /v1/pools/:pool/backends/:id      → 201 created | 200 renewed
 *   DELETE /v1/pools/:pool/backends/:id      → 204 (the backend drains) | 404
 *   GET    /v1/pools/:pool/lookup?ip=&port=  → 200 {"pool","ip","port","backend":{...}|null}
 */
import { isIP } from 'node:net';
import { Ajv, type ValidateFunction } from 'ajv';
import { MAX_WEIGHT } from '../backend.js';
import { backendIdProblem } from '../config/backend-id.js';
import { isHostPort, parseHostPort } from '../config/host-port.js';
import { issueFromAjvError, isRecord, sortInDocumentOrder, toConfigIssues, type LocatedIssue } from '../config/issues.js';
import { AdminError, type AdminApi, type AdminIssue, type RegistrationRequest } from './api.js';
import { jsonResponse, noContent, type AdminRequest, type JsonBody, type RouteTable } from './router.js';

/** Shortest TTL: a heartbeat more often than every ~50 ms would be load, not liveness. */
export const MIN_TTL_MS = 100;
/** Longest TTL, one day; for "never expires" omit ttlMs. */
export const MAX_TTL_MS = 86_400_000;

/**
 * The registration body. `additionalProperties: false`: a typo (`ttl`) is a 400 with "did you mean
 * ttlMs", not a silent default.
 */
const REGISTRATION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: {
    address: { type: 'string', minLength: 1, maxLength: 300 },
    weight: { type: 'integer', minimum: 0, maximum: MAX_WEIGHT, default: 1 },
    ttlMs: { type: 'integer', minimum: MIN_TTL_MS, maximum: MAX_TTL_MS },
  },
} as const;

let registrationValidator: ValidateFunction | undefined;

/** Compiled once, with the same options as the config validator so issueFromAjvError reads its errors. */
function validateRegistrationBody(body: unknown): boolean {
  registrationValidator ??= new Ajv({ allErrors: true, verbose: true, useDefaults: true, strict: true }).compile(
    REGISTRATION_SCHEMA,
  );
  return registrationValidator(body);
}

export function installPoolRoutes(server: RouteTable, api: AdminApi): void {
  server.route('GET', '/healthz', () => jsonResponse(200, { status: 'ok' }));

  server.route('GET', '/v1/pools', async () => jsonResponse(200, { pools: await api.listPools() }));

  server.route('GET', '/v1/pools/:pool/backends', async (request) => {
    const pool = request.params.pool;
    return jsonResponse(200, { pool, backends: await api.listBackends(pool) });
  });

  server.route('GET', '/v1/pools/:pool/backends/:id', async (request) => {
    const { pool, id } = request.params;
    const backend = await api.getBackend(pool, id);
    if (backend === undefined) throw AdminError.unknownBackend(pool, id);
    return jsonResponse(200, backend);
  });

  server.route('PUT', '/v1/pools/:pool/backends/:id', async (request) => {
    const { pool, id } = request.params;
    const registration = parseRegistration(id, await request.json());
    const outcome = await api.register(pool, id, registration);
    const body = {
      pool,
      id,
      outcome,
      address: registration.address.text,
      weight: registration.weight,
      ttlMs: registration.ttlMs,
    };
    return outcome === 'created' ? jsonResponse(201, body, { location: request.path }) : jsonResponse(200, body);
  });

  server.route('DELETE', '/v1/pools/:pool/backends/:id', async (request) => {
    const { pool, id } = request.params;
    if (!(await api.deregister(pool, id))) throw AdminError.unknownBackend(pool, id);
    return noContent();
  });

  server.route('GET', '/v1/pools/:pool/lookup', async (request) => {
    const pool = request.params.pool;
    const { ip, port } = parseLookupQuery(request);
    const found = await api.lookup(pool, ip, port);
    return jsonResponse(200, { pool, ip, port, backend: found });
  });
}

/**
 * Validates the id (from the URL) and the PUT body and reports every problem at once, like the
 * config checker: the id first (`url.id`), then the body's issues in document order, each with its
 * JSON path; the first is also the response's `error` and `path`.
 */
function parseRegistration(id: string, json: JsonBody): RegistrationRequest {
  const body = json.value;
  const issues: AdminIssue[] = [];
  // The same rule as a config backend id: it names the backend in logs, URLs and the hash.
  const idProblem = backendIdProblem(id);
  if (idProblem !== undefined) issues.push({ path: 'url.id', message: `backend id ${idProblem}` });
  // Read like a config file: a repeated key is refused (JSON keeps only its last value), beside every other problem.
  const located: LocatedIssue[] = json.duplicateKeys.map((segments) => ({ segments, message: 'key appears more than once in its object (JSON keeps only the last value)' }));
  if (!validateRegistrationBody(body)) {
    for (const error of registrationValidator?.errors ?? []) located.push(issueFromAjvError(error, body));
  }
  // The schema cannot parse host:port; check any address it let through, so one answer lists everything.
  const address = isRecord(body) && typeof body.address === 'string' && body.address !== '' ? parseHostPort(body.address, { purpose: 'connect' }) : undefined;
  if (address !== undefined && !isHostPort(address) && !located.some((issue) => issue.segments[0] === 'address')) {
    located.push({ segments: ['address'], message: address.error });
  }
  for (const issue of toConfigIssues(sortInDocumentOrder(located, body))) issues.push(issue);
  if (issues.length > 0 || address === undefined || !isHostPort(address)) throw AdminError.invalidBody(issues);
  const valid = body as { weight: number; ttlMs?: number };
  return { address, weight: valid.weight, ttlMs: valid.ttlMs ?? null };
}

const LOOKUP_PARAMETERS = new Set(['ip', 'port']);

/** `ip` is required (IPv4 or IPv6 text); `port` is optional (0..65535, default 0; only source_ip_port pools use it). */
function parseLookupQuery(request: AdminRequest): { ip: string; port: number } {
  for (const name of new Set(request.query.keys())) {
    if (!LOOKUP_PARAMETERS.has(name)) {
      throw new AdminError(400, `unknown query parameter (allowed: ip, port)`, `query.${name}`);
    }
    if (request.query.getAll(name).length > 1) throw new AdminError(400, 'given more than once', `query.${name}`);
  }
  const ip = request.query.get('ip');
  if (ip === null || ip === '') throw new AdminError(400, 'is required (the client IP address)', 'query.ip');
  if (isIP(ip) === 0) throw new AdminError(400, `"${ip}" is not an IPv4 or IPv6 address`, 'query.ip');
  const portText = request.query.get('port');
  if (portText === null) return { ip, port: 0 };
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new AdminError(400, `"${portText}" is not a port number 0..65535`, 'query.port');
  }
  return { ip, port: Number(portText) };
}
