/**
 * Reading a JSON request body without trusting the client: the content type must be JSON (415),
 * the length must be known or chunked (411), and the size is limited while streaming (413) — a
 * declared Content-Length over the limit is refused before a byte is read, and a chunked body is
 * cut off as soon as it crosses the limit, so a client cannot make the server buffer more than
 * `limitBytes`. The server closes the connection after such a refusal (the rest of the body was
 * never read), see server.ts.
 *
 * The JSON itself is read like a config file (src/config/json-text.ts): a syntax error names its
 * line and column, and duplicate keys are returned by path for the route to refuse together with
 * every other problem of the body (JSON.parse would silently keep the last one, so
 * `{"weight": 0, "weight": 5}` would register weight 5).
 */
import type { IncomingMessage } from 'node:http';
import { readJsonText } from '../config/json-text.js';
import { AdminError } from './api.js';
import type { JsonBody } from './router.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function readJsonBody(request: IncomingMessage, limitBytes: number, path: string): Promise<JsonBody> {
  const contentType = request.headers['content-type'];
  if (!isJsonMediaType(contentType)) {
    throw new AdminError(
      415,
      `Content-Type must be application/json (got ${contentType === undefined ? 'none' : JSON.stringify(contentType)})`,
      path,
    );
  }
  const declared = request.headers['content-length'];
  if (declared === undefined && request.headers['transfer-encoding'] === undefined) {
    throw new AdminError(411, 'a body is required: send Content-Length (or chunked Transfer-Encoding)', path);
  }
  if (declared !== undefined && Number(declared) > limitBytes) {
    throw new AdminError(413, `body of ${declared} bytes exceeds the limit of ${limitBytes} bytes`, path);
  }

  const bytes = await collect(request, limitBytes, path);
  if (bytes.length === 0) throw new AdminError(400, 'body is empty; expected a JSON object', '$');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new AdminError(400, 'body is not valid UTF-8', '$');
  }
  const json = readJsonText(text);
  if (!json.ok) throw new AdminError(400, `body is not valid JSON: line ${json.line}, column ${json.column}: ${json.message}`, '$');
  return { value: json.value, duplicateKeys: json.duplicateKeys.map((duplicate) => duplicate.path) };
}

/** `application/json`, optionally with parameters (`; charset=utf-8`); case-insensitive (RFC 9110 §8.3.1). */
function isJsonMediaType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const mediaType = header.split(';', 1)[0].trim().toLowerCase();
  return mediaType === 'application/json';
}

function collect(request: IncomingMessage, limitBytes: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      request.removeListener('data', onData);
      request.removeListener('end', onEnd);
      request.removeListener('error', onError);
      request.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limitBytes) {
        cleanup();
        // Stop reading; the server answers 413 and closes the connection.
        request.pause();
        reject(new AdminError(413, `body exceeds the limit of ${limitBytes} bytes`, path));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    // A client that goes away mid-body is the client's doing, not a bug of ours: a 400 (that nobody
    // reads) logged at debug, not a 500 with a stack at error level for every dropped connection
    // (found by test/fuzz-admin.test.ts).
    const onError = (): void => {
      cleanup();
      reject(new AdminError(400, 'the client closed the connection before the body was complete', '$'));
    };
    const onClose = (): void => {
      cleanup();
      reject(new AdminError(400, 'the client closed the connection before the body was complete', '$'));
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}
