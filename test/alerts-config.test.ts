/**
 * Config `alerts`: defaults, every refusal with its JSON path, the schema's event types being the
 * event model's, and webhook headers (secrets) redacted wherever a plan shows the config.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configAsJson } from '../src/admin/config-view.js';
import { redactAlerts } from '../src/config/alerts.js';
import { validateConfig } from '../src/config/load.js';
import { formatPlan } from '../src/config/plan-report.js';
import { planReload } from '../src/config/reload-plan.js';
import type { RinglbConfig } from '../src/config/types.js';
import { EVENT_TYPES } from '../src/events/types.js';

const BASE = {
  listeners: [{ name: 'web', bind: '127.0.0.1:0', pool: 'web' }],
  pools: [{ name: 'web', backends: [{ address: '127.0.0.1:9001' }] }],
};

function withWebhooks(webhooks: unknown[]): unknown {
  return { ...BASE, alerts: { webhooks } };
}

function valid(raw: unknown): RinglbConfig {
  const result = validateConfig(raw);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

function issues(raw: unknown): string[] {
  const result = validateConfig(raw);
  assert.equal(result.ok, false, 'expected a refusal');
  return result.ok ? [] : result.issues.map((issue) => `${issue.path}: ${issue.message}`);
}

describe('config alerts', () => {
  test('absent: no webhooks; a webhook gets its defaults', () => {
    assert.deepEqual(valid(BASE).alerts, { webhooks: [] });
    assert.deepEqual(valid(withWebhooks([{ name: 'ops', url: 'http://127.0.0.1:9000/alerts' }])).alerts, {
      webhooks: [{ name: 'ops', url: 'http://127.0.0.1:9000/alerts', events: null, headers: {}, timeoutMs: 5000, maxRetries: 5, queueSize: 1000 }],
    });
  });

  test('refusals name their JSON path', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'a', url: 'ftp://127.0.0.1/x' }, /^alerts\.webhooks\[0\]\.url: must be an http: or https: URL, not ftp:/],
      [{ name: 'a', url: 'not a url' }, /^alerts\.webhooks\[0\]\.url: is not a valid URL/],
      [{ name: 'a', url: 'http://user:pw@127.0.0.1/x' }, /^alerts\.webhooks\[0\]\.url: must not carry credentials/],
      [{ name: 'a', url: 'http://127.0.0.1/x', events: ['down', 'sideways'] }, /^alerts\.webhooks\[0\]\.events\[1\]/],
      [{ name: 'a', url: 'http://127.0.0.1/x', headers: { 'Content-Type': 'text/plain' } }, /^alerts\.webhooks\[0\]\.headers\["Content-Type"\]: "Content-Type" is set by ringlb/],
      [{ name: 'a', url: 'http://127.0.0.1/x', headers: { 'X-Key': 'a\r\nInjected: 1' } }, /^alerts\.webhooks\[0\]\.headers\["X-Key"\]/],
      [{ name: 'a', url: 'http://127.0.0.1/x', queueSize: 0 }, /^alerts\.webhooks\[0\]\.queueSize/],
      [{ name: 'a', url: 'http://127.0.0.1/x', timeout: 5 }, /^alerts\.webhooks\[0\]/],
      [{ url: 'http://127.0.0.1/x' }, /^alerts\.webhooks\[0\]/],
    ];
    for (const [webhook, expected] of cases) {
      const found = issues(withWebhooks([webhook]));
      assert.ok(found.some((issue) => expected.test(issue)), `${JSON.stringify(webhook)} → ${found.join(' | ')}`);
    }
    const duplicates = issues(withWebhooks([{ name: 'a', url: 'http://127.0.0.1/1' }, { name: 'a', url: 'http://127.0.0.1/2' }]));
    assert.deepEqual(duplicates, ['alerts.webhooks[1].name: duplicate webhook name "a" (also alerts.webhooks[0].name)']);
    const sameHeader = issues(withWebhooks([{ name: 'a', url: 'http://127.0.0.1/1', headers: { 'X-Key': '1', 'x-key': '2' } }]));
    assert.match(sameHeader[0]!, /alerts\.webhooks\[0\]\.headers\["x-key"\]: header "x-key" is also given as "X-Key"/);
  });

  test("the schema's event types are the event model's", () => {
    const schema = JSON.parse(readFileSync(fileURLToPath(new URL('../../schema/ringlb.schema.json', import.meta.url)), 'utf8')) as {
      definitions: { webhook: { properties: { events: { items: { enum: string[] } } } } };
    };
    assert.deepEqual(schema.definitions.webhook.properties.events.items.enum, [...EVENT_TYPES]);
  });

  test('headers are redacted in a reload plan (ringlb diff, reload logs) and by redactAlerts', () => {
    const before = valid(withWebhooks([{ name: 'ops', url: 'http://127.0.0.1:9000/a', headers: { Authorization: 'Bearer old-secret-1' } }]));
    const after = valid(withWebhooks([{ name: 'ops', url: 'http://127.0.0.1:9000/a', headers: { Authorization: 'Bearer new-secret-2' } }]));
    const plan = planReload(before, after, { implementation: 'reference' });
    assert.equal(plan.changed, true, 'a changed header is a change');
    const text = formatPlan(plan) + JSON.stringify(plan.settings);
    assert.ok(!text.includes('secret'), text);
    assert.match(text, /alerts\.webhooks/);
    assert.deepEqual(redactAlerts(after.alerts!).webhooks[0]!.headers, { Authorization: '<redacted>' });
  });

  test('GET /v1/config shows header names, not their values; the rest of the webhook as configured', () => {
    const config = valid(withWebhooks([{ name: 'ops', url: 'http://127.0.0.1:9000/a', events: ['down'], headers: { Authorization: 'Bearer shown-nowhere-9' } }]));
    const json = configAsJson(config) as { alerts: unknown };
    assert.ok(!JSON.stringify(json).includes('shown-nowhere'));
    assert.deepEqual(json.alerts, {
      webhooks: [{ name: 'ops', url: 'http://127.0.0.1:9000/a', events: ['down'], headers: { Authorization: '<redacted>' }, timeoutMs: 5000, maxRetries: 5, queueSize: 1000 }],
    });
  });
});
