/**
 * CidrList (src/proxy/cidr-list.ts): table-driven matches against net.BlockList, Node's own CIDR
 * matcher, as the independent reference; and the parse errors the config reports.
 */
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { describe, test } from 'node:test';
import { CidrList, parseCidr } from '../src/proxy/cidr-list.js';

const LISTS: readonly (readonly string[])[] = [
  ['127.0.0.0/8'],
  ['10.1.2.3'],
  ['192.168.0.0/16', '172.16.0.0/12', '0.0.0.0/32'],
  ['0.0.0.0/0'],
  ['::1'],
  ['2001:db8::/32', 'fe80::/10'],
  ['::/0'],
  ['10.0.0.0/8', '2001:db8:1::/48'],
  ['128.0.0.0/1', '8000::/1'],
];

const ADDRESSES = [
  '127.0.0.1', '127.255.255.255', '128.0.0.1', '10.1.2.3', '10.1.2.4', '192.168.44.1', '172.31.255.255', '172.32.0.0', '0.0.0.0', '255.255.255.255',
  '::1', '::2', '2001:db8::1', '2001:db8:ffff:ffff::', '2001:db9::', 'fe80::1', 'febf:ffff::1', 'fec0::', '2001:db8:1:ffff::1', '2001:db8:2::1', '8000::', '7fff::1',
];

function reference(list: readonly string[]): BlockList {
  const blockList = new BlockList();
  for (const cidr of list) {
    const [address, prefix] = cidr.split('/') as [string, string | undefined];
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    if (prefix === undefined) blockList.addAddress(address, family);
    else blockList.addSubnet(address, Number(prefix), family);
  }
  return blockList;
}

describe('CidrList', () => {
  for (const list of LISTS) {
    test(`matches as net.BlockList does: ${list.join(', ')}`, () => {
      const ours = new CidrList(list);
      const theirs = reference(list);
      for (const address of ADDRESSES) {
        const ipv4 = !address.includes(':');
        // One deliberate difference: BlockList checks an IPv4 peer against IPv6 rules as ::ffff:a.b.c.d,
        // so `::/0` covers IPv4 too; ours keeps the families apart (only ::ffff: entries fold onto IPv4).
        const expected = ipv4 && list.includes('::/0') && !list.some((cidr) => !cidr.includes(':')) ? false : theirs.check(address, ipv4 ? 'ipv4' : 'ipv6');
        assert.equal(ours.matches(address), expected, `${address} in ${list.join(', ')}`);
      }
    });
  }

  test('an IPv4-mapped IPv6 peer matches IPv4 entries; garbage and undefined match nothing', () => {
    const list = new CidrList(['127.0.0.0/8', '::ffff:10.0.0.0/104']);
    assert.equal(list.matches('::ffff:127.0.0.2'), true);
    assert.equal(list.matches('10.9.9.9'), true);
    assert.equal(list.matches('11.0.0.1'), false);
    assert.equal(list.matches('not an address'), false);
    assert.equal(list.matches(undefined), false);
    assert.equal(new CidrList(['::/0']).matches('127.0.0.1'), false, 'IPv6 entries do not match IPv4 peers');
  });

  test('parse errors say what is wrong', () => {
    for (const [text, message] of [
      ['10.0.0.0/33', /prefix length must be 0\.\.32/],
      ['::/129', /prefix length must be 0\.\.128/],
      ['10.0.0.0/x', /must be a number/],
      ['10.0.0', /is not an IPv4 or IPv6 CIDR/],
      ['fe80::1%eth0', /is not an IPv4 or IPv6 CIDR/],
      ['010.0.0.1', /is not an IPv4 or IPv6 CIDR/],
    ] as const) {
      const parsed = parseCidr(text);
      assert.ok('error' in parsed, text);
      assert.match(parsed.error, message);
    }
    assert.deepEqual(parseCidr('10.1.2.3/8'), { family: 4, words: Uint32Array.from([0x0a000000, 0, 0, 0]), prefix: 8 }, 'host bits are masked');
  });
});
