/**
 * What happened to the balancer, as the operator sees it: the one event model behind the SSE stream
 * (`GET /v1/events`), alert webhooks and the dashboard's health timeline. Producers (health, outlier
 * detection, the registry, the admin API, reload) publish to an `EventSink`; the main thread's event
 * bus numbers and stamps each event and fans it out. Events are control-plane facts: the data plane
 * never publishes one.
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
  | 'reload';

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
