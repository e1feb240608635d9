/**
 * The status and control routes (docs/admin-api.md): what runs, who owns the table, an operator's
 * runtime override of one backend, a disruption preview, and the config in force. Each handler
 * validates its input at the edge (a 400 names every bad field by its JSON path) and makes one
 * `AdminApi` call.
 *
 *   GET   /v1/status                       → 200 StatusView
 *   GET   /v1/pools/:pool/table            → 200 TableView | 409 (no table) | 404
 *   PATCH /v1/pools/:pool/backends/:id     → 200 StatusBackendView | 400 | 404
 *   POST  /v1/pools/:pool/preview          → 200 PreviewResult | 400 | 404
 *   GET   /v1/config                       → 200 ConfigView
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { BACKEND_STATES, MAX_WEIGHT, type Backend, type BackendState } from '../backend.js';
import { issueFromAjvError, isRecord, sortInDocumentOrder, toConfigIssues, type LocatedIssue } from '../config/issues.js';
import { parseBackendEntry } from '../discovery/backend-entries.js';
import { AdminError, type AdminApi, type BackendChange, type PreviewRequest } from './api.js';
import { jsonResponse, type JsonBody, type RouteTable } from './router.js';

/** `additionalProperties: false`: a typo (`weigth`) is a 400 with "did you mean weight", not a no-op. */
const CHANGE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { enum: [...BACKEND_STATES] },
    weight: { type: 'integer', minimum: 0, maximum: MAX_WEIGHT },
  },
} as const;

/**
 * The preview body's shape; the entries of `backends` are checked by the rules every backend
 * source uses (discovery/backend-entries.ts), so a preview accepts exactly what a config would.
 */
const PREVIEW_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    backends: { type: 'array', items: { type: 'object' } },
    weights: { type: 'object', additionalProperties: { type: 'integer', minimum: 0, maximum: MAX_WEIGHT } },
    remove: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
} as const;

let changeValidator: ValidateFunction | undefined;
let previewValidator: ValidateFunction | undefined;

/** Compiled once, with the config validator's options so issueFromAjvError reads their errors. */
function compile(schema: object): ValidateFunction {
  return new Ajv({ allErrors: true, verbose: true, strict: true }).compile(schema);
}

export function installStatusRoutes(server: RouteTable, api: AdminApi): void {
  server.route('GET', '/v1/status', async () => jsonResponse(200, await api.status()));

  server.route('GET', '/v1/config', async () => jsonResponse(200, await api.configInForce()));

  server.route('GET', '/v1/pools/:pool/table', async (request) => jsonResponse(200, await api.table(request.params.pool)));

  server.route('PATCH', '/v1/pools/:pool/backends/:id', async (request) => {
    const { pool, id } = request.params;
    const change = parseChange(await request.json());
    const backend = await api.changeBackend(pool, id, change, { remoteAddress: request.remoteAddress });
    if (backend === undefined) throw AdminError.unknownBackend(pool, id);
    return jsonResponse(200, backend);
  });

  server.route('POST', '/v1/pools/:pool/preview', async (request) => {
    const pool = request.params.pool;
    return jsonResponse(200, await api.preview(pool, parsePreview(await request.json())));
  });
}

/** Issues of a body: repeated keys, then the schema's, in document order. */
function schemaIssues(json: JsonBody, validate: ValidateFunction, extra: readonly LocatedIssue[] = []): LocatedIssue[] {
  const located: LocatedIssue[] = json.duplicateKeys.map((segments) => ({ segments, message: 'key appears more than once in its object (JSON keeps only the last value)' }));
  if (!validate(json.value)) for (const error of validate.errors ?? []) located.push(issueFromAjvError(error, json.value));
  for (const issue of extra) located.push(issue);
  return located;
}

function refuse(located: readonly LocatedIssue[], body: unknown): never {
  throw AdminError.invalidBody(toConfigIssues(sortInDocumentOrder(located, body)));
}

/** An empty object is valid JSON Schema-wise with minProperties aside; say what it lacks in words. */
function emptyIssue(body: unknown, expected: string): LocatedIssue[] {
  return isRecord(body) && Object.keys(body).length === 0 ? [{ segments: [], message: `is empty; expected ${expected}` }] : [];
}

function parseChange(json: JsonBody): BackendChange {
  changeValidator ??= compile(CHANGE_SCHEMA);
  const located = schemaIssues(json, changeValidator, emptyIssue(json.value, '"state" (active, drain, maint) and/or "weight" (0..10000)'));
  if (located.length > 0) refuse(located, json.value);
  const body = json.value as { state?: BackendState; weight?: number };
  return { ...(body.state !== undefined ? { state: body.state } : {}), ...(body.weight !== undefined ? { weight: body.weight } : {}) };
}

function parsePreview(json: JsonBody): PreviewRequest {
  previewValidator ??= compile(PREVIEW_SCHEMA);
  const body = json.value;
  const extra = emptyIssue(body, '"backends" (the whole proposed set) or "weights" and/or "remove" (changes to the set in force)');
  const backends: Backend[] = [];
  if (isRecord(body) && body.backends !== undefined) {
    if (body.weights !== undefined || body.remove !== undefined) {
      const other = body.weights !== undefined ? 'weights' : 'remove';
      extra.push({ segments: [other], message: 'cannot be combined with backends (send the whole set, or changes to the set in force)' });
    }
    if (Array.isArray(body.backends)) {
      const firstIndexById = new Map<string, number>();
      body.backends.forEach((entry: unknown, index) => {
        if (!isRecord(entry)) return; // the schema reports it
        const result = parseBackendEntry(entry, '');
        if ('errors' in result) {
          for (const error of result.errors) extra.push(entryIssue(index, error));
          return;
        }
        const first = firstIndexById.get(result.backend.id);
        if (first !== undefined) {
          extra.push({ segments: ['backends', index, 'id'], message: `duplicate backend id "${result.backend.id}" (also backends[${first}])` });
          return;
        }
        firstIndexById.set(result.backend.id, index);
        backends.push(result.backend);
      });
    }
  }
  if (isRecord(body) && Array.isArray(body.remove)) {
    // As a set's duplicate id: a repeated id is a mistake in the request (a typo of another id?),
    // not a second removal.
    const firstIndexById = new Map<unknown, number>();
    body.remove.forEach((id: unknown, index) => {
      const first = firstIndexById.get(id);
      if (typeof id === 'string' && first !== undefined) extra.push({ segments: ['remove', index], message: `"${id}" is listed twice (also remove[${first}])` });
      else firstIndexById.set(id, index);
    });
  }
  const located = schemaIssues(json, previewValidator, extra);
  if (located.length > 0) refuse(located, body);
  const valid = body as { backends?: unknown[]; weights?: Record<string, number>; remove?: string[] };
  if (valid.backends !== undefined) return { kind: 'set', backends };
  return { kind: 'changes', weights: new Map(Object.entries(valid.weights ?? {})), remove: valid.remove ?? [] };
}

/** `address: must be ...` from parseBackendEntry (path '') → the issue at `backends[i].address`. */
function entryIssue(index: number, error: string): LocatedIssue {
  const colon = error.indexOf(': ');
  const field = colon < 0 ? '' : error.slice(0, colon);
  const message = colon < 0 ? error : error.slice(colon + 2);
  return { segments: field === '' || field === 'entry' ? ['backends', index] : ['backends', index, field], message };
}
