/**
 * BackendPool's narrow interface over its private balancer, with no sockets: what a hash policy's
 * lookup answers against where a key lives in the table, and the prepare/commit contract of an
 * in-place rebuild.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { validateConfig } from '../src/config/load.js';
import { sampleClients } from '../src/config/reload-plan.js';
import type { PoolConfig } from '../src/config/types.js';
import { BackendPool, type PreparedRebuild } from '../src/proxy/backend-pool.js';
import { LogCapture } from './helpers/log-capture.js';

function poolConfig(balance: string, backends: readonly Record<string, unknown>[]): PoolConfig {
  const result = validateConfig({ listeners: [{ name: 'l', bind: '127.0.0.1:0', pool: 'p' }], pools: [{ name: 'p', balance, backends }] });
  if (!result.ok) assert.fail(JSON.stringify(result.issues));
  return result.config.pools[0]!;
}

function startPool(t: TestContext, config: PoolConfig): BackendPool {
  const pool = new BackendPool({ config, logger: new LogCapture().logger('warn') });
  t.after(() => pool.stop());
  return pool;
}

const THREE = [{ address: '127.0.0.1:7001' }, { address: '127.0.0.1:7002' }, { address: '127.0.0.1:7003', state: 'maint' }];

describe('BackendPool', () => {
  for (const balance of ['maglev', 'ring_hash']) {
    test(`${balance}: lookup skips a backend in maint, homeIdOf still names it, other keys stay home`, (t) => {
      const pool = startPool(t, poolConfig(balance, THREE));
      assert.equal(pool.policy, balance);
      const maint = '127.0.0.1:7003';
      assert.equal(pool.isRoutable(pool.slotOf(maint)), false);
      let homedOnMaint = 0;
      for (const client of sampleClients().slice(0, 2000)) {
        const home = pool.homeIdOf(client.ip, client.port);
        const found = pool.lookup(client.ip, client.port);
        assert.ok(home !== undefined && found !== undefined, `${client.ip}:${client.port} has a home and a route`);
        assert.equal(pool.idOf(found.slot), found.backendId);
        assert.notEqual(found.backendId, maint);
        if (home === maint) homedOnMaint += 1;
        // Tables ignore health: a key whose home is routable goes home.
        else assert.equal(found.backendId, home, `${client.ip}:${client.port}`);
      }
      // A third of the keys live on the maint backend (±10 points over 2000 keys).
      assert.ok(homedOnMaint > 460 && homedOnMaint < 870, `keys homed on the maint backend: ${homedOnMaint}`);
    });
  }

  test('commitRebuild applies only what prepareRebuild returned, and only once the pool has not changed since', (t) => {
    const config = poolConfig('round_robin', THREE);
    const pool = startPool(t, config);
    const slots = pool.backends.map((backend) => pool.slotOf(backend.id));
    const forged: PreparedRebuild = { config, backends: pool.backends, capacity: pool.capacity, report: pool.setBackends(pool.backends) };
    assert.throws(() => pool.commitRebuild(forged, null), TypeError);

    const maglev = poolConfig('maglev', THREE);
    const first = pool.prepareRebuild(maglev, pool.backends, pool.capacity);
    const second = pool.prepareRebuild(maglev, pool.backends, pool.capacity);
    assert.equal(pool.policy, 'round_robin', 'preparing changes nothing');
    pool.commitRebuild(first, null);
    assert.equal(pool.policy, 'maglev');
    assert.deepEqual(pool.backends.map((backend) => pool.slotOf(backend.id)), slots, 'every backend keeps its slot');
    assert.throws(() => pool.commitRebuild(second, null), /stale/);
  });
});
