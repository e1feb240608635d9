/**
 * Discovery sources: where a pool's backend set comes from when it is not the config's static
 * list. One factory over the `"discovery"` shapes, so the config loader maps JSON to options
 * and the registry only ever sees a `DiscoverySource`.
 */
import { createDnsSource, type DnsSourceOptions } from './dns-source.js';
import { createEtcdSource, type EtcdSourceOptions } from './etcd-source.js';
import { createFileSource, type FileSourceOptions } from './file-source.js';
import type { DiscoverySource } from './types.js';

export type DiscoveryOptions =
  | ({ readonly type: 'file' } & FileSourceOptions)
  | ({ readonly type: 'dns' } & DnsSourceOptions)
  | ({ readonly type: 'etcd' } & EtcdSourceOptions);

/** Builds the source; bad options throw a TypeError saying what is wrong (validate at load). */
export function createDiscoverySource(options: DiscoveryOptions): DiscoverySource {
  switch (options.type) {
    case 'file':
      return createFileSource(options);
    case 'dns':
      return createDnsSource(options);
    case 'etcd':
      return createEtcdSource(options);
    default:
      throw new TypeError(`discovery: unknown type ${JSON.stringify((options as { type: unknown }).type)}; expected file, dns or etcd`);
  }
}

export type { DiscoveryKind, DiscoveryListener, DiscoverySource } from './types.js';
export type { FileSourceOptions } from './file-source.js';
export type { DnsRecordType, DnsSourceOptions } from './dns-source.js';
export type { EtcdBackendValue, EtcdSourceOptions } from './etcd-source.js';
export { registerWithLease } from './etcd-source.js';
export { parseBackendEntry, parseBackendList, sameBackendSet, sortById } from './backend-entries.js';
