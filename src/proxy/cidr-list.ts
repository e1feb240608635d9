/**
 * A set of IPv4 and IPv6 CIDRs matched against a peer address with integers only: the address is
 * parsed into words (core/key-hash.ts `addressWords`, the parser the hash key uses) and compared
 * with each network under its mask. Built once per config; `matches` allocates nothing, where
 * `net.BlockList.check` builds a `SocketAddress` per call.
 *
 * Linear in the entries: allow/deny lists and trusted front proxies are a handful of networks. A
 * list of thousands would want a prefix trie; TODO when someone needs it (measure first).
 * IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, a dual-stack listener's IPv4 clients) match IPv4 entries,
 * and `::ffff:` entries are IPv4 entries. Otherwise the families stay apart: `::/0` is every IPv6
 * peer, not every peer (net.BlockList would also match IPv4 peers there; write `0.0.0.0/0` too).
 */
import { addressWords } from '../core/key-hash.js';

/** A parsed CIDR, or the reason it is not one (config cross-checks report it with its path). */
export type ParsedCidr = { readonly family: 4 | 6; readonly words: Uint32Array; readonly prefix: number } | { readonly error: string };

export function parseCidr(text: string): ParsedCidr {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const words = new Uint32Array(4);
  const family = addressWords(address, words);
  if (family === 0 || address.includes('%')) return { error: `"${text}" is not an IPv4 or IPv6 CIDR (a.b.c.d/n, x:y::z/n, or a bare address)` };
  // A mapped address folds onto IPv4: its prefix counts IPv4 bits then.
  const mapped = family === 4 && address.includes(':');
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return { error: `"${text}": the prefix length must be a number` };
    prefix = Number(prefixText) - (mapped ? 96 : 0);
    if (prefix < 0 || prefix > bits) return { error: `"${text}": the prefix length must be 0..${bits}` };
  }
  for (let word = 0; word < (family === 4 ? 1 : 4); word++) words[word] = (words[word]! & maskWord(prefix, word)) >>> 0;
  return { family, words, prefix };
}

/** The mask of 32-bit word `word` for a prefix of `prefix` bits. */
function maskWord(prefix: number, word: number): number {
  const bitsHere = Math.max(0, Math.min(32, prefix - word * 32));
  return bitsHere === 0 ? 0 : bitsHere === 32 ? 0xffffffff : (0xffffffff << (32 - bitsHere)) >>> 0;
}

/** Scratch for the peer being matched; one thread runs one match at a time. */
const peer = new Uint32Array(4);

export class CidrList {
  /** IPv4: network and mask per entry. */
  readonly #v4Networks: Uint32Array;
  readonly #v4Masks: Uint32Array;
  /** IPv6: four network words then four mask words per entry. */
  readonly #v6: Uint32Array;
  readonly size: number;

  /** `cidrs` were validated by the config loader; one that does not parse throws. */
  constructor(cidrs: readonly string[]) {
    const v4: { words: Uint32Array; prefix: number }[] = [];
    const v6: { words: Uint32Array; prefix: number }[] = [];
    for (const text of cidrs) {
      const parsed = parseCidr(text);
      if ('error' in parsed) throw new Error(parsed.error);
      (parsed.family === 4 ? v4 : v6).push(parsed);
    }
    this.#v4Networks = Uint32Array.from(v4, (entry) => entry.words[0]!);
    this.#v4Masks = Uint32Array.from(v4, (entry) => maskWord(entry.prefix, 0));
    this.#v6 = new Uint32Array(v6.length * 8);
    v6.forEach((entry, index) => {
      for (let word = 0; word < 4; word++) {
        this.#v6[index * 8 + word] = entry.words[word]!;
        this.#v6[index * 8 + 4 + word] = maskWord(entry.prefix, word);
      }
    });
    this.size = cidrs.length;
  }

  /** Per connection: does the peer address (as a socket reports it) fall in one of the networks? */
  matches(address: string | undefined): boolean {
    if (address === undefined) return false;
    const family = addressWords(address, peer);
    if (family === 4) {
      const networks = this.#v4Networks;
      const masks = this.#v4Masks;
      const value = peer[0]!;
      for (let i = 0; i < networks.length; i++) if (((value & masks[i]!) >>> 0) === networks[i]) return true;
      return false;
    }
    if (family === 6) {
      const v6 = this.#v6;
      for (let at = 0; at < v6.length; at += 8) {
        if (
          ((peer[0]! & v6[at + 4]!) >>> 0) === v6[at] &&
          ((peer[1]! & v6[at + 5]!) >>> 0) === v6[at + 1] &&
          ((peer[2]! & v6[at + 6]!) >>> 0) === v6[at + 2] &&
          ((peer[3]! & v6[at + 7]!) >>> 0) === v6[at + 3]
        ) {
          return true;
        }
      }
    }
    return false;
  }
}
