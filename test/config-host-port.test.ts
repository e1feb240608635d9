import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseHostPort } from '../src/config/load.js';

const BACKEND = { purpose: 'connect' } as const;
const LISTENER = { purpose: 'bind' } as const;

describe('parseHostPort: accepted forms', () => {
  const cases: ReadonlyArray<readonly [string, string, number]> = [
    ['127.0.0.1:9001', '127.0.0.1', 9001],
    ['[::1]:9001', '::1', 9001],
    ['[2001:db8::17]:443', '2001:db8::17', 443],
    ['[fe80::1%eth0]:80', 'fe80::1%eth0', 80],
    ['[::ffff:127.0.0.1]:80', '::ffff:127.0.0.1', 80],
    ['localhost:9001', 'localhost', 9001],
    ['db-1.example.internal:5432', 'db-1.example.internal', 5432],
    ['a:1', 'a', 1],
  ];
  for (const [text, host, port] of cases) {
    test(text, () => assert.deepEqual(parseHostPort(text, BACKEND), { host, port, text }));
  }

  test('wildcard addresses only where they mean something (listeners)', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:1', LISTENER), { host: '0.0.0.0', port: 1, text: '0.0.0.0:1' });
    assert.deepEqual(parseHostPort('[::]:65535', LISTENER), { host: '::', port: 65535, text: '[::]:65535' });
    for (const text of ['0.0.0.0:7001', '[::]:7001', '[0:0::0]:7001']) {
      const result = parseHostPort(text, BACKEND);
      assert.ok('error' in result, text);
      assert.match(result.error, /is a listener's "every address", not one to connect to; write 127\.0\.0\.1:7001/);
    }
  });

  test('a bare port: a listener may bind every address, a backend needs its host', () => {
    const listener = parseHostPort('6380', LISTENER);
    assert.ok('error' in listener);
    assert.match(listener.error, /^"6380" is missing its host; write 127\.0\.0\.1:6380 \(this machine only\), 0\.0\.0\.0:6380/);
    const backend = parseHostPort('6380', BACKEND);
    assert.ok('error' in backend);
    assert.equal(backend.error, '"6380" is missing its host; write 127.0.0.1:6380 (this machine) or <backend host>:6380');
  });

  test('port 0 only where allowed (listeners)', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:0', LISTENER), { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' });
    assert.deepEqual(parseHostPort('127.0.0.1:0', BACKEND), { error: 'port 0 out of range 1..65535' });
  });
});

describe('parseHostPort: rejected forms say why', () => {
  const cases: ReadonlyArray<readonly [string, RegExp]> = [
    ['::1:9001', /^IPv6 addresses must be in brackets: write \[::1\]:9001 instead of ::1:9001$/],
    ['2001:db8::17:443', /^IPv6 addresses must be in brackets: write \[2001:db8::17\]:443/],
    ['::1', /^"::1" is missing its port; write \[::1\]:<port>$/],
    ['[::1]', /^"\[::1\]" is missing its port; write \[::1\]:<port>$/],
    ['[::1', /has "\[" without "\]"/],
    ['[::1]9001', /^unexpected "9001" after "\]"/],
    ['[127.0.0.1]:80', /^"127\.0\.0\.1" in brackets is not an IPv6 address$/],
    ['127.0.0.1', /^"127\.0\.0\.1" is missing its port; expected host:port/],
    ['127.0.0.1:', /^missing port after ":"; expected a number 1\.\.65535$/],
    [':9001', /^":9001" is missing its host/],
    // A bare port (`"bind": "6380"`) lacks its host, not its port.
    ['6380', /^"6380" is missing its host; write 127\.0\.0\.1:6380 \(this machine\) or <backend host>:6380$/],
    ['127.0.0.1:http', /^port "http" is not a number$/],
    ['127.0.0.1:-1', /^port "-1" is not a number$/],
    ['127.0.0.1:65536', /^port 65536 out of range 1\.\.65535$/],
    ['127.0.0.1:99999999999999999999', /out of range 1\.\.65535$/],
    ['256.0.0.1:80', /^"256\.0\.0\.1" is not a valid IPv4 address$/],
    ['10.1:80', /^"10\.1" is not a valid IPv4 address$/],
    ['my_host:80', /^"my_host" is not a valid host name or IP address$/],
    ['-host:80', /is not a valid host name/],
    ['a..b:80', /is not a valid host name/],
    [`${'a'.repeat(64)}:80`, /is not a valid host name/],
    ['a:b:c', /too many colons/],
    [' 127.0.0.1:80', /must not contain spaces/],
  ];
  for (const [text, message] of cases) {
    test(JSON.stringify(text), () => {
      const result = parseHostPort(text, BACKEND);
      assert.ok('error' in result, `expected ${text} to be rejected`);
      assert.match(result.error, message);
    });
  }
});
