/**
 * The `workers` setting: how many data-plane workers a config asks for on this machine and this
 * Node, and the one warning to give when Node cannot run them.
 *
 * Each worker listens on its own socket bound to the same address; only `reusePort` (SO_REUSEPORT,
 * the kernel spreading connections over the sockets) makes that possible, and Node has it only
 * since 22.12 / 23.1. Older Node runs one worker. Pure: the CLI (`ringlb check`) and the runtime
 * read the same plan, so what check warns about is what run does.
 */
import { availableParallelism } from 'node:os';

/** Node added net.Server listen({ reusePort }) in 22.12.0 (and 23.1.0). */
export const REUSE_PORT_MIN_NODE = '22.12.0';

/**
 * The first release of each line that has reusePort (Node's changelogs for v22.12.0 and v23.1.0
 * both list "net: add reusePort option", nodejs/node#55408). Every line after the last one listed
 * has it; every line before the first does not.
 */
const REUSE_PORT_SINCE: ReadonlyArray<readonly [major: number, minor: number]> = [minorOf(REUSE_PORT_MIN_NODE), [23, 1]];

/** The schema's maximum for an explicit count; 'auto' on a bigger machine is held to it too. */
const MAX_WORKERS = 256;

/**
 * Whether this Node version has net.Server listen({ reusePort }). The version only: the option
 * also needs a kernel that balances SO_REUSEPORT sockets (Linux 3.9+, FreeBSD 12+, ...; Node
 * throws elsewhere, nodejs/node#61018). TODO: the platform is not checked here.
 */
export function supportsReusePort(nodeVersion: string = process.versions.node): boolean {
  const [major, minor] = minorOf(nodeVersion);
  const line = REUSE_PORT_SINCE.find(([sinceMajor]) => sinceMajor === major);
  if (line !== undefined) return minor >= line[1];
  return major > REUSE_PORT_SINCE[REUSE_PORT_SINCE.length - 1]![0];
}

export interface WorkerPlan {
  /** As configured. */
  readonly requested: number | 'auto';
  /** What `requested` asks for on this machine ('auto' → os.availableParallelism()). */
  readonly wanted: number;
  /** Data-plane workers that will run: `wanted`, or 1 when reusePort is missing. */
  readonly count: number;
  /** The one warning to log (and print in `ringlb check`) when count < wanted, else null. */
  readonly warning: string | null;
}

/**
 * `requested` undefined (a hand-built config) means 'auto', the schema's default. `options` replace
 * the running Node's version and the machine's parallelism (tests, and a preview for another host).
 */
export function planWorkers(
  requested: number | 'auto' | undefined,
  options: { nodeVersion?: string; parallelism?: number } = {},
): WorkerPlan {
  const asked = requested ?? 'auto';
  const nodeVersion = options.nodeVersion ?? process.versions.node;
  let wanted: number;
  if (asked === 'auto') {
    const parallelism = options.parallelism ?? availableParallelism();
    if (!Number.isInteger(parallelism) || parallelism < 1) throw new RangeError(`parallelism must be an integer ≥ 1, got ${parallelism}`);
    wanted = Math.min(parallelism, MAX_WORKERS);
  } else {
    // The loader refuses anything else; a hand-built config that slips through is a bug, not a default.
    if (!Number.isInteger(asked) || asked < 1 || asked > MAX_WORKERS) throw new RangeError(`workers must be "auto" or an integer 1..${MAX_WORKERS}, got ${asked}`);
    wanted = asked;
  }
  if (wanted === 1 || supportsReusePort(nodeVersion)) return { requested: asked, wanted, count: wanted, warning: null };
  const what = asked === 'auto' ? `auto (${wanted})` : String(wanted);
  return {
    requested: asked,
    wanted,
    count: 1,
    warning: `workers: ${what} needs Node ≥ ${minorOf(REUSE_PORT_MIN_NODE).join('.')} for reusePort; Node ${nodeVersion} runs 1 worker (Node 24 LTS recommended)`,
  };
}

/**
 * `22.12.0` → [22, 12]; a leading `v` (as `node -v` prints) and a pre-release tail are allowed.
 * Patch releases never add an option, so the patch is checked for shape only. Numbers, not text:
 * 22.9 < 22.12.
 */
function minorOf(version: string): [major: number, minor: number] {
  const match = /^v?(\d+)\.(\d+)\.\d+(?:[-+].*)?$/.exec(version);
  if (match === null) throw new TypeError(`not a Node version: "${version}" (expected major.minor.patch)`);
  return [Number(match[1]), Number(match[2])];
}
