import { validationError } from '../errors.ts';

/**
 * Usernames are unique per practice, compared case-insensitively after Unicode NFKC
 * normalization, so "Anna", "ANNA" and "Ａｎｎａ" (fullwidth) are one account (HIPAA
 * 164.312(a)(2)(i) unique user identification).
 */
export function normalizeUsername(input: string): string {
  return input.normalize('NFKC').trim().toLowerCase();
}

const ALLOWED = /^[\p{L}\p{N}][\p{L}\p{N}._-]{1,62}[\p{L}\p{N}]$/u;

/** Normalizes and validates a new username; throws a validation error naming the field. */
export function parseUsername(input: unknown, field = 'username'): string {
  if (typeof input !== 'string') {
    throw validationError(field, 'must be a string');
  }
  const u = normalizeUsername(input);
  if (!ALLOWED.test(u)) {
    throw validationError(
      field,
      'must be 3-64 letters, digits, dots, dashes or underscores, starting and ending with a letter or digit',
    );
  }
  return u;
}
