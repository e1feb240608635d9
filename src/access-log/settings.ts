/**
 * What `log.access`, `log.onConnect` and `log.openConnectionsIntervalMs` say, as one plain value:
 * the main thread holds it and sends it, with the output's descriptor (output.ts), to every
 * data-plane worker (worker-protocol.ts), each of which applies it to its own `AccessLog`
 * (access-log.ts). All of it applies on reload.
 */
import type { RinglbConfig } from '../config/types.js';

/** `stdout`, `stderr`, or the path of a file appended to (absolute once the config is loaded). */
export type AccessLogOutput = string;

export interface AccessLogSettings {
  readonly enabled: boolean;
  /** Share of connections logged, 0..1; failures (outcomes other than ok and drained) are always logged. */
  readonly sample: number;
  readonly output: AccessLogOutput;
  /** A line when the backend connection is established (`event: "connect"`). */
  readonly onConnect: boolean;
  /** A line per open connection this often (`event: "open"`); 0 = never. */
  readonly openConnectionsIntervalMs: number;
}

export const DEFAULT_ACCESS_LOG: AccessLogSettings = {
  enabled: true,
  sample: 1,
  output: 'stdout',
  onConnect: false,
  openConnectionsIntervalMs: 0,
};

/** Hand-built configs (demo, tests) may leave every access-log key out: the defaults apply. */
export function accessLogSettingsOf(log: RinglbConfig['log']): AccessLogSettings {
  return {
    enabled: log.access?.enabled ?? DEFAULT_ACCESS_LOG.enabled,
    sample: log.access?.sample ?? DEFAULT_ACCESS_LOG.sample,
    output: log.access?.output ?? DEFAULT_ACCESS_LOG.output,
    onConnect: log.onConnect ?? DEFAULT_ACCESS_LOG.onConnect,
    openConnectionsIntervalMs: log.openConnectionsIntervalMs ?? DEFAULT_ACCESS_LOG.openConnectionsIntervalMs,
  };
}

export function isFileOutput(output: AccessLogOutput): boolean {
  return output !== 'stdout' && output !== 'stderr';
}
