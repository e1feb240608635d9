/**
 * What happened to the balancer, as the operator sees it: the one event model behind the SSE stream
 * (`GET /v1/events`), alert webhooks and the dashboard's health timeline. Producers (health, outlier
 * detection, the registry, the admin API, reload) publish to an `EventSink`; the main thread's event
 * bus numbers and stamps each event and fans it out. Events are control-plane facts: the data plane
 * never publishes one. What the data plane refuses reaches the stream as the main thread reads it
 * from the shared counters (src/events/edge-watch.ts): `refusals_*` and `fds_*` are summaries of
 * counts, per listener and interval, never one per connection.
 */

export type RinglbEventType =
  /** A backend stopped being healthy; `cause` names the flag (`failed_active_check`, `ejected_outlier`, …). */
  | 'down'
  /** A backend is healthy again (every health flag cleared). */
  | 'up'
  /** Outlier detection ejected a backend (`cause`: the failure kind, `until`: ISO time). */
  | 'ejected'
  /** An ejection ended. */
  | 'unejected'
  | 'panic_entered'
  | 'panic_left'
  /** Membership: a backend joined or left the set (config, discovery or registration: `source`). */
  | 'backend_added'
  | 'backend_removed'
  /** Administrative state: `from`/`to` among `active`, `drain`, `maint`; `source` says who. */
  | 'state_changed'
  | 'weight_changed'
  /** A config reload: `result` `applied` or `refused` (with `message`). */
  | 'reload'
  /** A listener began refusing connections with `outcome` (`denied`, `rejected_source_rate`, …): `count` in the first interval, `total` ever. */
  | 'refusals_started'
  /** Refusals go on: `count` in the last `intervalMs`, `total` ever (at most one per listener, outcome and interval). */
  | 'refusals'
  /** An interval passed without a refusal of `outcome`: `total` ever. */
  | 'refusals_stopped'
  /** A listener ran out of file descriptors: accepting paused, clients refused (`count` this interval, `total` ever, `pauses`). */
  | 'fds_exhausted'
  /** Every thread of the listener accepts again and an interval passed without a refusal for lack of descriptors. */
  | 'fds_recovered';

export const EVENT_TYPES: readonly RinglbEventType[] = [
  'down',
  'up',
  'ejected',
  'unejected',
  'panic_entered',
  'panic_left',
  'backend_added',
  'backend_removed',
  'state_changed',
  'weight_changed',
  'reload',
  'refusals_started',
  'refusals',
  'refusals_stopped',
  'fds_exhausted',
  'fds_recovered',
];

/** What a producer publishes: the type and the facts it knows; absent fields are omitted in JSON. */
export interface RinglbEventInput {
  readonly type: RinglbEventType;
  readonly pool?: string;
  readonly backend?: string;
  /** `host:port` of the backend. */
  readonly address?: string;
  readonly cause?: string;
  /** Who changed it: `config`, `discovery`, `registration`, `admin`, `health`, `outlier`. */
  readonly source?: string;
  readonly from?: string;
  readonly to?: string;
  readonly weight?: number;
  readonly previousWeight?: number;
  readonly result?: 'applied' | 'refused';
  readonly message?: string;
  /** ISO time an ejection ends. */
  readonly until?: string;
  /** The listener (its configured name) a `refusals_*` or `fds_*` event is about. */
  readonly listener?: string;
  /** The access-log outcome counted (`denied`, `rejected_source_limit`, `rejected_no_fds`, …). */
  readonly outcome?: string;
  /** Connections with `outcome` in this event's interval, every thread's. */
  readonly count?: number;
  /** Connections with `outcome` since the process started, every thread's (`ringlb_listener_connections_total`). */
  readonly total?: number;
  /** The interval `count` covers (ms). */
  readonly intervalMs?: number;
  /** Times a thread stopped accepting for lack of descriptors, ever (`ringlb_listener_accept_pauses_total`). */
  readonly pauses?: number;
}

/** As subscribers receive it: numbered (monotonic per process, the SSE `id`) and stamped (ISO time). */
export interface RinglbEvent extends RinglbEventInput {
  readonly id: number;
  readonly time: string;
}

export interface EventSink {
  publish(event: RinglbEventInput): void;
}

/** For components created without a bus (unit tests, `ringlb diff`). */
export const NO_EVENTS: EventSink = { publish() {} };
