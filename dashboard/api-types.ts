/**
 * The admin API's JSON as the page reads it: the server's own types (src/admin/api.ts, the routes'
 * contract; docs/admin-api.md), imported as types only, so the page and the server cannot drift
 * apart. Names here are the page's short ones.
 */
export type {
  BackendStatusWord as BackendStatus,
  ConfigView,
  StatusBackendView as StatusBackend,
  StatusListenerView as StatusListener,
  StatusPoolView as StatusPool,
  StatusView as Status,
  TableRunView as TableRun,
  TableView as PoolTable,
} from '../src/admin/api.js';
export type { BackendState as AdminState } from '../src/backend.js';
export type { RinglbEvent } from '../src/events/types.js';
