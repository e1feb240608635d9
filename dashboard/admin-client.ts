/**
 * The page's side of the admin API: every data request carries the bearer token when one was
 * entered. The token lives in sessionStorage only (this tab, until it closes): never in
 * localStorage or a cookie, so it neither outlives the session nor rides along on requests the
 * page did not make.
 */
const TOKEN_KEY = 'ringlb.adminToken';

/** 401: no token was sent (`missing`) or it was wrong (`invalid`). */
export class Unauthorized extends Error {
  constructor(readonly reason: 'missing' | 'invalid') {
    super(reason === 'missing' ? 'this ringlb asks for its admin token' : 'the admin token was not accepted');
  }
}

/** Any other non-2xx answer, with the server's `{error, path}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly path: string | null,
  ) {
    super(message);
  }
}

export class AdminClient {
  #token: string | null = sessionStorage.getItem(TOKEN_KEY);

  get hasToken(): boolean {
    return this.#token !== null;
  }

  setToken(token: string): void {
    this.#token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
  }

  forgetToken(): void {
    this.#token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  /** Request headers: Authorization when a token is held, plus `extra`. */
  headers(extra: Record<string, string> = {}): Headers {
    const headers = new Headers(extra);
    if (this.#token !== null) headers.set('authorization', `Bearer ${this.#token}`);
    return headers;
  }

  /** `path` is relative to the page (`v1/status`), so the page works behind a path prefix too. */
  url(path: string): URL {
    return new URL(path, document.baseURI);
  }

  async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await fetch(this.url(path), {
      method,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal,
    });
    await throwUnlessOk(response);
    return (await response.json()) as T;
  }
}

/** Turns a non-2xx response into Unauthorized or ApiError (reading its JSON error body). */
export async function throwUnlessOk(response: Response): Promise<void> {
  if (response.ok) return;
  if (response.status === 401) {
    const challenge = response.headers.get('www-authenticate') ?? '';
    throw new Unauthorized(challenge.includes('invalid_token') ? 'invalid' : 'missing');
  }
  let message = `HTTP ${response.status}`;
  let path: string | null = null;
  try {
    const body = (await response.json()) as { error?: unknown; path?: unknown };
    if (typeof body.error === 'string') message = body.error;
    if (typeof body.path === 'string') path = body.path;
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  throw new ApiError(response.status, message, path);
}
