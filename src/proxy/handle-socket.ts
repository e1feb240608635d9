/**
 * The one module that uses Node internals: sockets of the data plane on libuv's TCP handles
 * (`process.binding('tcp_wrap')` / `'stream_wrap'`), without `net.Socket`'s stream machinery.
 *
 * Measured reason (bench/RESULTS.md "The floor under Node's sockets", bench/socket-floor.ts): a
 * `net.Socket` costs 65–120 µs of user CPU per proxied connection on top of the ~35 µs the handles
 * themselves need; with two per connection that was most of ringlb's gap to HAProxy's CPU per
 * connection. Only what a proxy needs is here: accept (paused until resumed), connect, read as
 * chunks, write with a pending-bytes count for backpressure, FIN (shutdown), reset, close, byte
 * counts and the peer address. The API mirrors the subset of `net.Socket` that connection.ts uses
 * (`ProxySocket`), so the same connection code runs on either.
 *
 * Fallback: when the bindings cannot be loaded (a Node that removed them), when
 * `RINGLB_DATA_PATH=net` is set, or for a host that is not an IP literal, `net` is used instead;
 * the whole test suite also runs the `net` path (test/e2e-proxy.test.ts runs with both).
 */
import { connect as netConnect, isIP, type Server as NetServer, type Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

/** What connection.ts needs of a socket; `net.Socket` and `HandleSocket` both provide it. */
export interface ProxySocket {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The address the peer connected to (read only by pools that send a PROXY header). */
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly destroyed: boolean;
  readonly readableEnded: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
  resetAndDestroy(): unknown;
}

// --- the internal bindings, typed as far as we use them ------------------------------------------

interface StreamReq {
  handle: TcpHandle;
  oncomplete: (this: StreamReq, status: number) => void;
  async?: boolean;
  socket?: HandleSocket;
  bytes?: number;
  buffer?: Buffer;
}
interface TcpHandle {
  onread: (this: TcpHandle, buffer: ArrayBuffer | undefined) => void;
  onconnection?: (status: number, client: TcpHandle | undefined) => void;
  owner?: HandleSocket;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buffer: Buffer): void;
  writeBuffer(req: StreamReq, data: Buffer): number;
  shutdown(req: StreamReq): number;
  close(callback: () => void): void;
  reset(callback: () => void): number;
  setNoDelay(enable: boolean): number;
  getpeername(out: { address?: string; port?: number }): number;
  getsockname(out: { address?: string; port?: number; family?: string }): number;
  connect(req: unknown, address: string, port: number): number;
  connect6(req: unknown, address: string, port: number): number;
  bind(address: string, port: number, flags?: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  /** The OS file descriptor (POSIX). */
  readonly fd?: number;
}
interface Bindings {
  readonly TCP: new (type: number) => TcpHandle;
  readonly TCPConnectWrap: new () => { oncomplete: (status: number) => void; socket?: HandleSocket };
  readonly WriteWrap: new () => StreamReq;
  readonly ShutdownWrap: new () => StreamReq;
  readonly SOCKET: number;
  readonly SERVER: number;
  /** undefined before Node 22.12 (no reusePort). */
  readonly REUSEPORT: number | undefined;
  readonly state: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kArrayBufferOffset: number;
  readonly kLastWriteWasAsync: number;
}

function loadBindings(): Bindings | null {
  if (process.env['RINGLB_DATA_PATH'] === 'net') return null;
  try {
    const binding = (process as unknown as { binding(name: string): any }).binding;
    const tcp = binding('tcp_wrap');
    const stream = binding('stream_wrap');
    if (typeof tcp.TCP !== 'function' || !(stream.streamBaseState instanceof Int32Array)) return null;
    return {
      TCP: tcp.TCP,
      TCPConnectWrap: tcp.TCPConnectWrap,
      WriteWrap: stream.WriteWrap,
      ShutdownWrap: stream.ShutdownWrap,
      SOCKET: tcp.constants.SOCKET,
      SERVER: tcp.constants.SERVER,
      REUSEPORT: tcp.constants.UV_TCP_REUSEPORT,
      state: stream.streamBaseState,
      kReadBytesOrError: stream.kReadBytesOrError,
      kArrayBufferOffset: stream.kArrayBufferOffset,
      kLastWriteWasAsync: stream.kLastWriteWasAsync,
    };
  } catch {
    return null;
  }
}

const B = loadBindings();
const UV_EOF = -4095;
/** write() says "wait for drain" once this much is queued in libuv (net.Socket's default highWaterMark). */
const HIGH_WATER = 16 * 1024;
/**
 * A socket that has read this much is a bulk stream: it then reads into a buffer of its own,
 * reused for every read, instead of a fresh 64 KiB buffer from Node per read (an allocation and
 * garbage per read: most of the user CPU per GB). Short connections never get one (no memory held
 * per idle connection).
 */
const OWN_READ_BUFFER_AFTER = 256 * 1024;
const OWN_READ_BUFFER_BYTES = 64 * 1024;
/**
 * The own read buffers: a chunk from one of them must not be overwritten while a write of it is
 * pending, so such a write says "wait for drain" at once and the reader pauses until it completed.
 */
const ownReadBuffers = new WeakSet<ArrayBufferLike>();

/** True when the data plane runs on handles (see the module comment for when it does not). */
export function handlesAvailable(): boolean {
  return B !== null;
}

function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  const error = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  error.code = code;
  error.errno = errno;
  error.syscall = syscall;
  return error;
}

type Listener = (...args: any[]) => void;
function noop(): void {}

function onHandleRead(this: TcpHandle, buffer: ArrayBuffer | undefined): void {
  this.owner?.onRead(buffer);
}

/** A closing handle's reads go nowhere (the native setter takes only functions). */
function ignoreRead(): void {}

function onWriteDone(this: StreamReq, status: number): void {
  this.socket!.onWriteDone(status, this.bytes!);
}

function onShutdownDone(this: StreamReq): void {
  this.socket!.onShutdownDone();
}

/** One TCP connection on a libuv handle; see `ProxySocket` for the contract (net.Socket's). */
export class HandleSocket implements ProxySocket {
  readonly #handle: TcpHandle;
  #onData: Listener | null = null;
  #onEnd: Listener | null = null;
  #onError: Listener | null = null;
  #onClose: Listener | null = null;
  #onDrain: Listener | null = null;
  #onConnect: Listener | null = null;
  #connecting: boolean;
  #paused: boolean;
  #reading = false;
  #destroyed = false;
  #closeEmitted = false;
  #readableEnded = false;
  #writableEnded = false;
  #shutdownDone = false;
  #pendingBytes = 0;
  #needDrain = false;
  #bytesRead = 0;
  #bytesWritten = 0;
  #peer: { address?: string; port?: number } | null = null;
  #local: { address?: string; port?: number } | null = null;
  /** Set once this socket reads into a buffer of its own (OWN_READ_BUFFER_AFTER). */
  #readBuffer: Buffer | null = null;

  private constructor(handle: TcpHandle, connecting: boolean, paused: boolean) {
    this.#handle = handle;
    this.#connecting = connecting;
    this.#paused = paused;
    handle.owner = this;
    handle.onread = onHandleRead;
    handle.setNoDelay(true);
  }

  /** An accepted connection, paused (its bytes wait in the kernel) until `resume()`. */
  static accepted(handle: TcpHandle): HandleSocket {
    return new HandleSocket(handle, false, true);
  }

  /** Connects to an IP literal; 'connect' or 'error' follows. */
  static connect(host: string, port: number, family: number): HandleSocket {
    const bindings = B!;
    const socket = new HandleSocket(new bindings.TCP(bindings.SOCKET), true, false);
    const request = new bindings.TCPConnectWrap();
    request.socket = socket;
    request.oncomplete = onConnectDone;
    const error = family === 6 ? socket.#handle.connect6(request, host, port) : socket.#handle.connect(request, host, port);
    if (error !== 0) process.nextTick(() => socket.#fail(error, 'connect'));
    return socket;
  }

  get remoteAddress(): string | undefined {
    return this.#peerInfo().address;
  }

  /** The OS descriptor (-1 once closed or where unknown): an integer read, no syscall. */
  get fd(): number {
    return this.#destroyed ? -1 : (this.#handle.fd ?? -1);
  }

  get remotePort(): number | undefined {
    return this.#peerInfo().port;
  }

  get localAddress(): string | undefined {
    return this.#localInfo().address;
  }

  get localPort(): number | undefined {
    return this.#localInfo().port;
  }

  /** A syscall, asked only by connections that send a PROXY header, kept for later. */
  #localInfo(): { address?: string; port?: number } {
    if (this.#local === null) {
      const out: { address?: string; port?: number } = {};
      if (!this.#destroyed) this.#handle.getsockname(out);
      this.#local = out;
    }
    return this.#local;
  }

  get bytesRead(): number {
    return this.#bytesRead;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get readableEnded(): boolean {
    return this.#readableEnded;
  }

  get writableEnded(): boolean {
    return this.#writableEnded;
  }

  get writableLength(): number {
    return this.#pendingBytes;
  }

  #peerInfo(): { address?: string; port?: number } {
    if (this.#peer === null) {
      const out: { address?: string; port?: number } = {};
      // Asked while the handle is open (the connection reads it at accept when it logs or hashes);
      // kept for later. A syscall, so never asked for nothing.
      if (!this.#destroyed) this.#handle.getpeername(out);
      this.#peer = out;
    }
    return this.#peer;
  }

  on(event: string, listener: Listener): this {
    switch (event) {
      case 'data':
        this.#onData = listener;
        this.#startReading();
        break;
      case 'end':
        this.#onEnd = listener;
        break;
      case 'error':
        this.#onError = listener;
        break;
      case 'close':
        this.#onClose = listener;
        break;
      case 'drain':
        this.#onDrain = listener;
        break;
      case 'connect':
        this.#onConnect = listener;
        break;
      default:
        throw new TypeError(`HandleSocket has no '${event}' event`);
    }
    return this;
  }

  once(event: string, listener: Listener): this {
    return this.on(event, listener);
  }

  removeListener(event: string, listener: Listener): this {
    if (event === 'data' && this.#onData === listener) this.#onData = null;
    else if (event === 'end' && this.#onEnd === listener) this.#onEnd = null;
    else if (event === 'error' && this.#onError === listener) this.#onError = null;
    else if (event === 'close' && this.#onClose === listener) this.#onClose = null;
    else if (event === 'drain' && this.#onDrain === listener) this.#onDrain = null;
    else if (event === 'connect' && this.#onConnect === listener) this.#onConnect = null;
    return this;
  }

  pause(): this {
    this.#paused = true;
    if (this.#reading) {
      this.#reading = false;
      this.#handle.readStop();
    }
    return this;
  }

  resume(): this {
    this.#paused = false;
    this.#startReading();
    return this;
  }

  #startReading(): void {
    if (this.#paused || this.#reading || this.#connecting || this.#destroyed || this.#readableEnded || this.#onData === null) return;
    this.#reading = true;
    const error = this.#handle.readStart();
    if (error !== 0) this.#fail(error, 'read');
  }

  write(chunk: Buffer): boolean {
    if (this.#destroyed || this.#writableEnded) return true;
    const bindings = B!;
    const request = new bindings.WriteWrap();
    request.handle = this.#handle;
    request.oncomplete = onWriteDone;
    request.async = false;
    request.socket = this;
    request.bytes = chunk.length;
    // An asynchronous write reads the chunk later: the request keeps it alive until then (else the
    // collector may free it under libuv: EFAULT, or worse, other bytes on the wire).
    request.buffer = chunk;
    const error = this.#handle.writeBuffer(request, chunk);
    if (error !== 0) {
      this.#fail(error, 'write');
      return false;
    }
    this.#bytesWritten += chunk.length;
    if (bindings.state[bindings.kLastWriteWasAsync] === 0) return true;
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes < HIGH_WATER && !ownReadBuffers.has(chunk.buffer)) return true;
    this.#needDrain = true;
    return false;
  }

  /** @internal libuv finished an asynchronous write. */
  onWriteDone(status: number, bytes: number): void {
    this.#pendingBytes -= bytes;
    if (status < 0) {
      this.#fail(status, 'write');
      return;
    }
    if (this.#needDrain && this.#pendingBytes === 0 && !this.#destroyed) {
      this.#needDrain = false;
      this.#onDrain?.();
    }
  }

  /** Our FIN, after every byte written before it (libuv queues the shutdown behind pending writes). */
  end(): this {
    if (this.#destroyed || this.#writableEnded) return this;
    this.#writableEnded = true;
    const bindings = B!;
    const request = new bindings.ShutdownWrap();
    request.handle = this.#handle;
    request.oncomplete = onShutdownDone;
    request.socket = this;
    const error = this.#handle.shutdown(request);
    // Not connected any more (the peer reset meanwhile): nothing to say; the close comes anyway.
    if (error !== 0) this.onShutdownDone();
    return this;
  }

  /** @internal */
  onShutdownDone(): void {
    this.#shutdownDone = true;
    this.#closeIfDone();
  }

  /** Both directions ended: close, as net.Socket does with allowHalfOpen. */
  #closeIfDone(): void {
    if (this.#readableEnded && this.#shutdownDone) this.destroy();
  }

  destroy(): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    this.#reading = false;
    this.#handle.onread = ignoreRead;
    this.#handle.close(() => this.#emitClose());
    return this;
  }

  /** RST instead of FIN; a socket whose FIN was already asked for can only be closed (libuv: EINVAL). */
  resetAndDestroy(): this {
    if (this.#destroyed) return this;
    if (this.#writableEnded || this.#connecting) return this.destroy();
    this.#destroyed = true;
    this.#reading = false;
    this.#handle.onread = ignoreRead;
    if (this.#handle.reset(() => this.#emitClose()) !== 0) this.#handle.close(() => this.#emitClose());
    return this;
  }

  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.#handle.owner = undefined;
    this.#onClose?.(false);
  }

  /** @internal a read completed: data, EOF or an error. */
  onRead(buffer: ArrayBuffer | undefined): void {
    const bindings = B!;
    const nread = bindings.state[bindings.kReadBytesOrError]!;
    if (nread > 0) {
      const own = this.#readBuffer;
      const chunk = own !== null ? own.subarray(0, nread) : Buffer.from(buffer!, bindings.state[bindings.kArrayBufferOffset], nread);
      this.#bytesRead += nread;
      if (own === null && this.#bytesRead >= OWN_READ_BUFFER_AFTER) this.#useOwnReadBuffer();
      this.#onData?.(chunk);
      return;
    }
    if (nread === 0) return;
    if (nread === UV_EOF) {
      this.#readableEnded = true;
      this.#reading = false;
      this.#handle.readStop();
      this.#onEnd?.();
      this.#closeIfDone();
      return;
    }
    this.#fail(nread, 'read');
  }

  /** From the next read on, read into a buffer of this socket's own (see OWN_READ_BUFFER_AFTER). */
  #useOwnReadBuffer(): void {
    const buffer = Buffer.allocUnsafeSlow(OWN_READ_BUFFER_BYTES);
    ownReadBuffers.add(buffer.buffer);
    this.#readBuffer = buffer;
    this.#handle.useUserBuffer(buffer);
  }

  /** @internal the connect finished. */
  onConnected(status: number): void {
    if (this.#destroyed) return;
    if (status < 0) {
      this.#fail(status, 'connect');
      return;
    }
    this.#connecting = false;
    this.#onConnect?.();
    this.#startReading();
  }

  /** An error ends the socket: closed first, then reported (as net.Socket: 'error', then 'close'). */
  #fail(errno: number, syscall: string): void {
    if (this.#destroyed) return;
    this.destroy();
    const listener = this.#onError;
    if (listener !== null) listener(errnoError(errno, syscall));
  }
}

function onConnectDone(this: { socket?: HandleSocket }, status: number): void {
  this.socket!.onConnected(status);
}

/**
 * An upstream connection: on a handle when the host is an IP literal (the pool resolves names off
 * the hot path), else through `net` (a name that never resolved).
 */
/**
 * The file descriptor of a listening socket, for reading its accept queue (src/proxy/accept-queue.ts);
 * -1 when unknown. `net.Server` keeps its fd on its internal handle.
 */
export function listeningFd(server: HandleServer | NetServer): number {
  if (server instanceof HandleServer) return server.fd;
  const fd = (server as unknown as { readonly _handle?: { readonly fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** A socket's OS descriptor, or -1 (closed, or not known on this platform). */
export function descriptorOf(socket: ProxySocket): number {
  if (socket instanceof HandleSocket) return socket.fd;
  const fd = (socket as unknown as { readonly _handle?: { readonly fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

export function connectUpstream(host: string, port: number, family: number): ProxySocket {
  if (B !== null && isIP(host) !== 0) return HandleSocket.connect(host, port, family === 0 ? isIP(host) : family);
  return netConnect({ host, port, family, allowHalfOpen: true, noDelay: true }) as Socket;
}

/**
 * A listening socket on a handle: accepted connections arrive paused. Only for IP-literal hosts
 * (`HandleServer.canBind`); the listener uses `net.Server` for the rest.
 */
export class HandleServer {
  readonly #handle: TcpHandle;
  #closed = false;

  static canBind(host: string, reusePort: boolean): boolean {
    return B !== null && isIP(host) !== 0 && (!reusePort || B.REUSEPORT !== undefined);
  }

  constructor(onConnection: (socket: HandleSocket) => void, onError: (error: NodeJS.ErrnoException) => void) {
    const bindings = B!;
    this.#handle = new bindings.TCP(bindings.SERVER);
    this.#handle.onconnection = (status, client) => {
      if (status < 0 || client === undefined) {
        onError(errnoError(status, 'accept'));
        return;
      }
      onConnection(HandleSocket.accepted(client));
    };
  }

  /** Binds and listens (backlog 511, as net.Server); throws an errno error (EADDRINUSE…). */
  listen(host: string, port: number, reusePort: boolean): void {
    const bindings = B!;
    const flags = reusePort ? bindings.REUSEPORT! : 0;
    let error = isIP(host) === 6 ? this.#handle.bind6(host, port, flags) : this.#handle.bind(host, port, flags);
    if (error === 0) error = this.#handle.listen(511);
    if (error !== 0) {
      this.close();
      throw errnoError(error, 'listen');
    }
  }

  address(): { address: string; port: number } | null {
    if (this.#closed) return null;
    const out: { address?: string; port?: number } = {};
    if (this.#handle.getsockname(out) !== 0) return null;
    return { address: out.address!, port: out.port! };
  }

  get listening(): boolean {
    return !this.#closed;
  }

  /** The listening socket's file descriptor (-1 once closed). */
  get fd(): number {
    return this.#closed ? -1 : (this.#handle.fd ?? -1);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close(noop);
  }
}
