/**
 * `host:port` parsing for listener binds and backend addresses.
 *
 * Accepted forms (the same ones Node's net.connect/net.Server#listen take, with the port attached):
 *   `127.0.0.1:9001`, `[::1]:9001`, `[fe80::1%eth0]:9001`, `localhost:9001`, `db-1.internal:5432`.
 * IPv6 needs brackets because its own colons make `::1:9001` ambiguous (it is itself a valid IPv6
 * address, 0:0:0:0:0:0:1:9001); RFC 3986 §3.2.2 writes IPv6 hosts the same way.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { HostPort } from '../backend.js';

export interface HostPortOptions {
  /**
   * `bind`: a listener's address; port 0 (the OS picks a free port) and the wildcard addresses
   * (0.0.0.0, [::]) are allowed. `connect`: an address ringlb connects to (a backend, a DNS
   * server); neither is.
   */
  readonly purpose: 'bind' | 'connect';
}

/** RFC 1123 §2.1 host name label: letters, digits and inner hyphens, 1..63 characters. */
const HOST_NAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** RFC 1035 §2.3.4: at most 253 characters in the textual form (255 octets on the wire). */
const MAX_HOST_NAME_LENGTH = 253;
const MAX_PORT = 65535;

/**
 * Parses `host:port` once at config load. Returns the parsed value or `{ error }`, a message that
 * says what is wrong and how to write it instead (the caller adds the JSON path).
 */
export function parseHostPort(text: string, options: HostPortOptions): HostPort | { error: string } {
  if (/\s/.test(text)) return { error: `"${text}" must not contain spaces` };
  const split = splitHostAndPort(text, options);
  if ('error' in split) return split;

  const port = parsePort(split.portText, options);
  if (typeof port === 'string') return { error: port };

  if (!split.bracketed) {
    const hostError = checkHostName(split.host);
    if (hostError !== undefined) return { error: hostError };
  }
  // Connecting to 0.0.0.0 or :: reaches this machine on Linux by accident, not by design: as a
  // backend it is a listener's address copied by mistake.
  if (options.purpose === 'connect' && (split.host === '0.0.0.0' || (split.bracketed && isUnspecifiedIPv6(split.host)))) {
    return { error: `"${text}" is a listener's "every address", not one to connect to; write 127.0.0.1:${port} (this machine) or the backend's own address` };
  }
  return { host: split.host, port, text };
}

/** True when `parseHostPort` succeeded (narrows the union). */
export function isHostPort(value: HostPort | { error: string }): value is HostPort {
  return !('error' in value);
}

interface SplitHostPort {
  readonly host: string;
  readonly portText: string;
  /** The host was written in brackets, so it has already been checked as an IPv6 address. */
  readonly bracketed: boolean;
}

function isUnspecifiedIPv6(host: string): boolean {
  return /^[0:]+$/.test(host);
}

function splitHostAndPort(text: string, options: HostPortOptions): SplitHostPort | { error: string } {
  const example = 'expected host:port, e.g. 127.0.0.1:9001 or [::1]:9001';
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { error: `"${text}" has "[" without "]"; ${example}` };
    const host = text.slice(1, close);
    if (!isIPv6(host)) return { error: `"${host}" in brackets is not an IPv6 address` };
    const rest = text.slice(close + 1);
    if (rest === '') return { error: `"${text}" is missing its port; write ${text}:<port>` };
    if (!rest.startsWith(':')) return { error: `unexpected "${rest}" after "]"; ${example}` };
    return { host, portText: rest.slice(1), bracketed: true };
  }

  const lastColon = text.lastIndexOf(':');
  // A bare number is a port without its host (`"bind": "6380"`), not a host without its port.
  if (lastColon < 0 && /^[0-9]+$/.test(text)) {
    return options.purpose === 'bind'
      ? { error: `"${text}" is missing its host; write 127.0.0.1:${text} (this machine only), 0.0.0.0:${text} (every IPv4 address) or [::1]:${text}` }
      : { error: `"${text}" is missing its host; write 127.0.0.1:${text} (this machine) or <backend host>:${text}` };
  }
  if (lastColon < 0) return { error: `"${text}" is missing its port; ${example}` };
  const host = text.slice(0, lastColon);
  const portText = text.slice(lastColon + 1);
  if (host.includes(':')) {
    // Several colons and no brackets: an IPv6 address written bare. Show the bracketed form.
    if (isIPv6(host)) {
      return { error: `IPv6 addresses must be in brackets: write [${host}]:${portText} instead of ${text}` };
    }
    if (isIPv6(text)) return { error: `"${text}" is missing its port; write [${text}]:<port>` };
    return { error: `"${text}" has too many colons; ${example}` };
  }
  if (host === '') return { error: `"${text}" is missing its host; ${example}` };
  return { host, portText, bracketed: false };
}

/** Returns the port number or an error message. */
function parsePort(portText: string, options: HostPortOptions): number | string {
  const lowest = options.purpose === 'bind' ? 0 : 1;
  if (portText === '') return `missing port after ":"; expected a number ${lowest}..${MAX_PORT}`;
  if (!/^[0-9]+$/.test(portText)) return `port "${portText}" is not a number`;
  const port = Number(portText);
  if (port < lowest || port > MAX_PORT) return `port ${portText} out of range ${lowest}..${MAX_PORT}`;
  return port;
}

/** Returns an error message, or undefined when `host` is an IPv4 address or a valid host name. */
function checkHostName(host: string): string | undefined {
  if (isIPv4(host)) return undefined;
  // All digits and dots but not IPv4 (`10.0.0.256`, `10.1`): a mistyped address, not a name.
  if (/^[0-9.]+$/.test(host)) return `"${host}" is not a valid IPv4 address`;
  const labels = host.split('.');
  if (host.length > MAX_HOST_NAME_LENGTH || !labels.every((label) => HOST_NAME_LABEL.test(label))) {
    return `"${host}" is not a valid host name or IP address`;
  }
  return undefined;
}
