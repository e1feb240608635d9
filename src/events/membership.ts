/**
 * Membership news: the events one change of a pool's backend set is (`backend_added`,
 * `backend_removed`, `weight_changed`, `state_changed`), computed from the set before and after by
 * backend id. The one place that turns a set change into events, for every writer of a set (the
 * registry for discovery, registration and reloads of static pools; the runtime for pools a reload
 * adds, replaces or removes).
 *
 * A backend whose address changed under the same id is, for health, a new backend (its checks
 * start over), so it is news as removed (old address) then added (new address).
 */
import type { Backend } from '../backend.js';
import type { EventSink } from './types.js';

export function publishSetChange(events: EventSink, pool: string, source: string, before: readonly Backend[], after: readonly Backend[]): void {
  const old = new Map(before.map((backend) => [backend.id, backend]));
  const next = new Set(after.map((backend) => backend.id));
  for (const backend of before) {
    if (!next.has(backend.id)) events.publish(membershipEvent('backend_removed', pool, source, backend));
  }
  for (const backend of after) {
    const previous = old.get(backend.id);
    if (previous === undefined) {
      events.publish(membershipEvent('backend_added', pool, source, backend));
      continue;
    }
    if (previous.address.text !== backend.address.text) {
      events.publish(membershipEvent('backend_removed', pool, source, previous));
      events.publish(membershipEvent('backend_added', pool, source, backend));
      continue;
    }
    if (previous.weight !== backend.weight) {
      events.publish({ type: 'weight_changed', pool, backend: backend.id, address: backend.address.text, source, weight: backend.weight, previousWeight: previous.weight });
    }
    if (previous.state !== backend.state) {
      events.publish({ type: 'state_changed', pool, backend: backend.id, address: backend.address.text, source, from: previous.state, to: backend.state });
    }
  }
}

function membershipEvent(type: 'backend_added' | 'backend_removed', pool: string, source: string, backend: Backend) {
  return { type, pool, backend: backend.id, address: backend.address.text, source, weight: backend.weight } as const;
}
