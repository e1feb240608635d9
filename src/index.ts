/** Library entry point: embed ringlb in another Node program. */
export { Ringlb, type RinglbOptions, type DrainResult, type ReloadResult, type ConfigSource } from './runtime.js';
export { createRootLogger, type Logger, type RootLoggerOptions } from './log.js';
export { BackendPool } from './proxy/backend-pool.js';
export { Listener, type ListenerStats } from './proxy/listener.js';
export type { ConnectionOutcome } from './proxy/connection.js';
export type { RinglbConfig } from './config/types.js';
export { planReload, type ReloadPlan, type PoolPlan, type SettingChange } from './config/reload-plan.js';
export { AccessLog, type AccessLogOptions } from './access-log/access-log.js';
export { DEFAULT_ACCESS_LOG, type AccessLogSettings } from './access-log/settings.js';
export type { AccessLogConfig, LogConfig } from './config/types.js';
export { histogramQuantile, type TrafficView, type BackendTrafficTotals, type ListenerTrafficTotals, type HistogramTotals } from './metrics/traffic-view.js';
