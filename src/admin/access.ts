/**
 * Who may talk to the admin listener: the binding rule (loopback unless a token is set) and the
 * bearer-token check (RFC 6750).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList } from 'node:net';

/** 127.0.0.0/8 and ::1; BlockList also matches IPv4-mapped (::ffff:127.0.0.1) and expanded IPv6 forms. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True when binding `host` exposes the listener to this machine only. `localhost` counts (it names
 * the loopback interface, RFC 6761 §6.3); any other name or a wildcard (`0.0.0.0`, `::`) does not.
 * The config validator should apply the same rule (import this) to reject a non-loopback admin
 * bind without a token.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  if (host.includes(':')) return LOOPBACK.check(host, 'ipv6');
  // A non-IP name throws inside BlockList.check; treat it as not loopback.
  try {
    return LOOPBACK.check(host, 'ipv4');
  } catch {
    return false;
  }
}

/**
 * Checks `Authorization: Bearer <token>` in constant time. Both sides are hashed with SHA-256
 * first, so timingSafeEqual compares equal-length digests and the comparison time does not reveal
 * the token's length either.
 */
export class BearerToken {
  readonly #digest: Buffer;

  constructor(token: string) {
    if (token.length === 0) throw new TypeError('admin token must not be empty');
    this.#digest = sha256(token);
  }

  /** 'ok', 'missing' (no bearer credentials) or 'invalid' (wrong token) — the WWW-Authenticate error differs. */
  check(authorization: string | undefined): 'ok' | 'missing' | 'invalid' {
    if (authorization === undefined) return 'missing';
    // The scheme is case-insensitive (RFC 9110 §11.1); one or more spaces before the credentials.
    const match = /^bearer +(\S+) *$/i.exec(authorization);
    if (match === null) return 'missing';
    return timingSafeEqual(sha256(match[1]), this.#digest) ? 'ok' : 'invalid';
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
