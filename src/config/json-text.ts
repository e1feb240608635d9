/**
 * Strict JSON (RFC 8259) reading for config files, with what JSON.parse does not give:
 *  - the line and column of a syntax error (Node 20's V8 messages often carry no position, e.g.
 *    `Unexpected token '}', "{"a":}" is not valid JSON`);
 *  - duplicate keys, which JSON.parse silently resolves to the last value: in a config file that
 *    is almost always a mistake (two `"retries"` in one pool, the first one ignored).
 * A small recursive-descent scanner checks the grammar and records duplicate keys; JSON.parse then
 * builds the value. Config-load speed does not matter here, clarity does.
 */

export type PathSegment = string | number;

export interface DuplicateKey {
  /** Path of the repeated key, e.g. ['pools', 0, 'retries']. */
  readonly path: readonly PathSegment[];
}

export type JsonTextResult =
  | { readonly ok: true; readonly value: unknown; readonly duplicateKeys: readonly DuplicateKey[] }
  | { readonly ok: false; readonly line: number; readonly column: number; readonly message: string };

/** Deeper than any sane config; keeps a hostile file from overflowing the stack. */
const MAX_DEPTH = 64;

class JsonSyntaxError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

export function readJsonText(text: string): JsonTextResult {
  // A UTF-8 byte order mark is common in files saved by Windows editors; JSON.parse rejects it.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const scanner = new JsonScanner(source);
  try {
    scanner.document();
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    const { line, column } = lineAndColumn(source, error.offset);
    return { ok: false, line, column, message: error.message };
  }
  return { ok: true, value: JSON.parse(source) as unknown, duplicateKeys: scanner.duplicateKeys };
}

/** 1-based line and column (in UTF-16 code units, as editors count for most text). */
function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

class JsonScanner {
  readonly duplicateKeys: DuplicateKey[] = [];
  #pos = 0;
  readonly #path: PathSegment[] = [];

  constructor(private readonly text: string) {}

  document(): void {
    this.#skipWhitespace();
    if (this.#pos >= this.text.length) this.#fail('the file is empty; expected a JSON object');
    this.#value(0);
    this.#skipWhitespace();
    if (this.#pos < this.text.length) this.#fail(`unexpected ${this.#describeHere()} after the end of the JSON value`);
  }

  #value(depth: number): void {
    if (depth > MAX_DEPTH) this.#fail(`nested more than ${MAX_DEPTH} levels deep`);
    const char = this.text[this.#pos];
    if (char === '{') this.#object(depth);
    else if (char === '[') this.#array(depth);
    else if (char === '"') this.#string();
    else if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) this.#number();
    else if (this.#literal('true') || this.#literal('false') || this.#literal('null')) return;
    else if (char === undefined) this.#fail('unexpected end of file; expected a value');
    else if (char === "'") this.#fail('strings must use double quotes (")');
    else this.#fail(`unexpected ${this.#describeHere()}; expected a value (object, array, string, number, true, false or null)`);
  }

  #object(depth: number): void {
    this.#pos++; // {
    const seen = new Set<string>();
    this.#skipWhitespace();
    if (this.text[this.#pos] === '}') {
      this.#pos++;
      return;
    }
    for (;;) {
      this.#skipWhitespace();
      if (this.text[this.#pos] !== '"') {
        const char = this.text[this.#pos];
        const hint =
          char === '}' ? ' (JSON allows no trailing comma)' : char === "'" ? ' (JSON strings use double quotes)' : '';
        this.#fail(`unexpected ${this.#describeHere()}; expected a property name in double quotes${hint}`);
      }
      const keyStart = this.#pos;
      this.#string();
      const key = JSON.parse(this.text.slice(keyStart, this.#pos)) as string;
      if (seen.has(key)) this.duplicateKeys.push({ path: [...this.#path, key] });
      seen.add(key);
      this.#skipWhitespace();
      if (this.text[this.#pos] !== ':') this.#fail(`unexpected ${this.#describeHere()}; expected ':' after property name`);
      this.#pos++;
      this.#skipWhitespace();
      this.#path.push(key);
      this.#value(depth + 1);
      this.#path.pop();
      this.#skipWhitespace();
      const next = this.text[this.#pos];
      if (next === ',') {
        this.#pos++;
      } else if (next === '}') {
        this.#pos++;
        return;
      } else {
        this.#fail(`unexpected ${this.#describeHere()}; expected ',' or '}' after property value`);
      }
    }
  }

  #array(depth: number): void {
    this.#pos++; // [
    this.#skipWhitespace();
    if (this.text[this.#pos] === ']') {
      this.#pos++;
      return;
    }
    for (let index = 0; ; index++) {
      this.#skipWhitespace();
      if (this.text[this.#pos] === ']') this.#fail(`unexpected ']'; expected a value (JSON allows no trailing comma)`);
      this.#path.push(index);
      this.#value(depth + 1);
      this.#path.pop();
      this.#skipWhitespace();
      const next = this.text[this.#pos];
      if (next === ',') {
        this.#pos++;
      } else if (next === ']') {
        this.#pos++;
        return;
      } else {
        this.#fail(`unexpected ${this.#describeHere()}; expected ',' or ']' after array element`);
      }
    }
  }

  #string(): void {
    const start = this.#pos;
    this.#pos++; // opening quote
    for (;;) {
      const code = this.text.charCodeAt(this.#pos);
      if (Number.isNaN(code)) {
        this.#pos = start;
        this.#fail('string is never closed (missing ")');
      }
      if (code === 0x22) {
        this.#pos++;
        return;
      }
      if (code === 0x0a || code === 0x0d) this.#fail('the line ends inside a string (missing closing ")');
      if (code < 0x20) this.#fail('control character in string (write newlines and tabs as \\n and \\t)');
      if (code === 0x5c) {
        const escape = this.text[this.#pos + 1];
        if (escape === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(this.text.slice(this.#pos + 2, this.#pos + 6))) {
            this.#fail('\\u must be followed by four hex digits');
          }
          this.#pos += 6;
        } else if (escape !== undefined && '"\\/bfnrt'.includes(escape)) {
          this.#pos += 2;
        } else {
          this.#fail(`invalid escape "\\${escape ?? ''}" in string`);
        }
        continue;
      }
      this.#pos++;
    }
  }

  #number(): void {
    // RFC 8259 §6: -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?
    const match = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.#pos));
    if (match === null) this.#fail(`invalid number`);
    const after = this.text[this.#pos + match[0].length];
    if (after !== undefined && /[0-9A-Za-z.+-]/.test(after)) {
      this.#pos += match[0].length;
      this.#fail(`invalid number (leading zeros, "+", hex and a bare "." are not JSON)`);
    }
    this.#pos += match[0].length;
  }

  #literal(word: string): boolean {
    if (!this.text.startsWith(word, this.#pos)) return false;
    this.#pos += word.length;
    return true;
  }

  #skipWhitespace(): void {
    for (;;) {
      const char = this.text[this.#pos];
      if (char === ' ' || char === '\t' || char === '\n' || char === '\r') {
        this.#pos++;
      } else if (char === '/' && (this.text[this.#pos + 1] === '/' || this.text[this.#pos + 1] === '*')) {
        this.#fail('comments are not allowed in JSON');
      } else {
        return;
      }
    }
  }

  #describeHere(): string {
    const char = this.text[this.#pos];
    if (char === undefined) return 'end of file';
    const word = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(this.text.slice(this.#pos));
    return JSON.stringify(word !== null ? word[0] : char);
  }

  #fail(message: string): never {
    throw new JsonSyntaxError(this.#pos, message);
  }
}
