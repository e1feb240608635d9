/**
 * Strict JSON (RFC 8259) reading for config files, with what JSON.parse does not give:
 *  - the line and column of a syntax error (Node 20's V8 messages often carry no position, e.g.
 *    `Unexpected token '}', "{"a":}" is not valid JSON`);
 *  - duplicate keys, which JSON.parse silently resolves to the last value: in a config file that
 *    is almost always a mistake (two `"retries"` in one pool, the first one ignored).
 * jsonc-parser (VS Code's JSON scanner, run with comments and trailing commas disallowed) checks
 * the grammar and reports duplicate keys; JSON.parse then builds the value, so numbers and strings
 * are exactly JSON's. This file only turns jsonc-parser's error codes into readable messages.
 */
import { createScanner, printParseErrorCode, visit, type ParseErrorCode, SyntaxKind } from 'jsonc-parser';

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

interface JsonError {
  readonly offset: number;
  readonly message: string;
}

export function readJsonText(text: string): JsonTextResult {
  // A UTF-8 byte order mark is common in files saved by Windows editors; JSON.parse rejects it.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  // jsonc-parser recurses once per nesting level, so a hostile file could overflow the stack:
  // find where nesting gets too deep with its (iterative) scanner and parse only up to there.
  const tooDeep = tooDeepOffset(source);
  const parseable = tooDeep === undefined ? source : source.slice(0, tooDeep);
  const duplicateKeys: DuplicateKey[] = [];
  const keysOfOpenObjects: Set<string>[] = [];
  const openContainers: ('{' | '[')[] = [];
  let error: JsonError | undefined;
  visit(
    parseable,
    {
      onObjectBegin: () => {
        openContainers.push('{');
        keysOfOpenObjects.push(new Set());
      },
      onObjectEnd: () => {
        openContainers.pop();
        keysOfOpenObjects.pop();
      },
      onArrayBegin: () => {
        openContainers.push('[');
      },
      onArrayEnd: () => {
        openContainers.pop();
      },
      onObjectProperty: (key, _offset, _length, _line, _character, objectPath) => {
        const keys = keysOfOpenObjects[keysOfOpenObjects.length - 1];
        if (keys.has(key)) duplicateKeys.push({ path: [...objectPath(), key] });
        keys.add(key);
      },
      onError: (code, offset, length) => {
        // Errors at the cut are only the cut's doing; the nesting error below reports it.
        if (error === undefined && (tooDeep === undefined || offset < tooDeep)) {
          error = describeError(source, code, offset, length, openContainers[openContainers.length - 1]);
        }
      },
    },
    { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
  );
  if (error === undefined && tooDeep !== undefined) {
    error = { offset: tooDeep, message: `nested more than ${MAX_DEPTH} levels deep` };
  }
  if (error !== undefined) {
    const { line, column } = lineAndColumn(source, error.offset);
    return { ok: false, line, column, message: error.message };
  }
  return { ok: true, value: JSON.parse(source) as unknown, duplicateKeys };
}

/** Offset of the first '{' or '[' that opens more than MAX_DEPTH levels, if any. */
function tooDeepOffset(text: string): number | undefined {
  const scanner = createScanner(text, true);
  let depth = 0;
  for (let token = scanner.scan(); token !== SyntaxKind.EOF; token = scanner.scan()) {
    if (token === SyntaxKind.OpenBraceToken || token === SyntaxKind.OpenBracketToken) {
      if (++depth > MAX_DEPTH) return scanner.getTokenOffset();
    } else if (token === SyntaxKind.CloseBraceToken || token === SyntaxKind.CloseBracketToken) {
      depth = Math.max(0, depth - 1);
    }
  }
  return undefined;
}

const EXPECTED_VALUE = 'expected a value (object, array, string, number, true, false or null)';
const AFTER_ELEMENT = "expected ',' or ']' after array element";
const AFTER_PROPERTY = "expected ',' or '}' after property value";
const BAD_NUMBER = 'invalid number (leading zeros, "+", hex and a bare "." are not JSON)';

/** A readable message, and the offset it points at, for jsonc-parser's error `code`. */
function describeError(
  text: string,
  code: ParseErrorCode,
  offset: number,
  length: number,
  container: '{' | '[' | undefined,
): JsonError {
  const here = describeAt(text, offset);
  const fail = (message: string, at = offset): JsonError => ({ offset: at, message });
  const char = text[offset];
  const before = text.slice(0, offset).trimEnd();
  // jsonc-parser ends a number at the first character that cannot continue it ("08" is 0, then 8).
  if (/[0-9]$/.test(text.slice(0, offset)) && /^[0-9A-Za-z.+-]/.test(text.slice(offset))) return fail(BAD_NUMBER);
  if (char === "'") return fail(`unexpected "'"; JSON strings use double quotes (")`);
  const trailingComma = before.endsWith(',') && (char === '}' || char === ']') ? ' (JSON allows no trailing comma)' : '';
  switch (printParseErrorCode(code)) {
    case 'ValueExpected':
      if (before === '') return fail('the file is empty; expected a JSON object');
      return fail(`unexpected ${here}; ${trailingComma === '' ? EXPECTED_VALUE : `expected a value${trailingComma}`}`);
    case 'PropertyNameExpected':
      return fail(`unexpected ${here}; expected a property name in double quotes${trailingComma}`);
    case 'ColonExpected':
      return fail(`unexpected ${here}; expected ':' after property name`);
    case 'CommaExpected':
      return fail(`unexpected ${here}; ${container === '[' ? AFTER_ELEMENT : AFTER_PROPERTY}`);
    case 'CloseBracketExpected': // reported after the array's end callback, so `container` is not it
      return fail(`unexpected ${here}; ${AFTER_ELEMENT}`);
    case 'CloseBraceExpected':
      return fail(`unexpected ${here}; ${AFTER_PROPERTY}`);
    case 'EndOfFileExpected':
      return fail(`unexpected ${here} after the end of the JSON value`);
    case 'InvalidCommentToken':
    case 'UnexpectedEndOfComment':
      return fail('comments are not allowed in JSON');
    case 'InvalidSymbol':
      if (/^[-+.0-9]/.test(char)) return fail(BAD_NUMBER);
      return fail(
        container === '{' && /[{,]$/.test(before)
          ? `unexpected ${here}; expected a property name in double quotes`
          : `unexpected ${here}; ${EXPECTED_VALUE}`,
      );
    case 'UnexpectedEndOfNumber':
      return fail('invalid number (expected a digit after "." or "e")', offset + length);
    case 'UnexpectedEndOfString':
      // jsonc-parser stops a string at a line break or at the end of the file.
      return offset + length < text.length
        ? fail('the line ends inside a string (missing closing ")', offset + length)
        : fail('string is never closed (missing ")');
    case 'InvalidCharacter':
    case 'InvalidEscapeCharacter':
    case 'InvalidUnicode':
      return badCharacterInString(text, offset, length);
    default:
      return fail(`unexpected ${here} (${printParseErrorCode(code)})`);
  }
}

/** jsonc-parser reports a bad escape or control character at the string's start; find the culprit. */
function badCharacterInString(text: string, stringOffset: number, length: number): JsonError {
  const escapeOrControl = /\\u[0-9A-Fa-f]{4}|\\["\\/bfnrt]|\\u|\\[\s\S]?|[\u0000-\u001f]/g;
  const string = text.slice(0, stringOffset + length);
  escapeOrControl.lastIndex = stringOffset + 1;
  for (let match = escapeOrControl.exec(string); match !== null; match = escapeOrControl.exec(string)) {
    const [found] = match;
    if (found === '\\u') return { offset: match.index, message: '\\u must be followed by four hex digits' };
    if (found.length < 2 || (found[0] === '\\' && !'"\\/bfnrtu'.includes(found[1]))) {
      const message =
        found[0] === '\\'
          ? `invalid escape "${found}" in string`
          : 'control character in string (write newlines and tabs as \\n and \\t)';
      return { offset: match.index, message };
    }
  }
  return { offset: stringOffset, message: 'invalid string' };
}

/** How a message names what is at `offset`: a whole word if one starts there, else the character. */
function describeAt(text: string, offset: number): string {
  const char = text[offset];
  if (char === undefined) return 'end of file';
  const word = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(text.slice(offset));
  return JSON.stringify(word !== null ? word[0] : char);
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
