/**
 * The one catalogue of typed errors. Each code has an HTTP status and a fixed, data-free message
 * shape; the HTTP layer and the CLI map these and nothing else to user-visible output.
 * Messages never carry health data (DESIGN.md invariant 5): they name fields and ids only.
 */
export const ErrorCodes = {
  CUSTOS_ERR_NOT_FOUND: 404,
  CUSTOS_ERR_VALIDATION: 400,
  CUSTOS_ERR_VERSION_CONFLICT: 412,
  CUSTOS_ERR_INTEGRITY: 500,
  CUSTOS_ERR_KEY_MISMATCH: 500,
  CUSTOS_ERR_KEY_MISSING: 500,
  CUSTOS_ERR_SCHEMA_TOO_NEW: 500,
  CUSTOS_ERR_DATA_DIR_LOCKED: 500,
  CUSTOS_ERR_IMPORT: 400,
  CUSTOS_ERR_CONFIG: 500,
  CUSTOS_ERR_UNAUTHENTICATED: 401,
  CUSTOS_ERR_LOGIN_FAILED: 401,
  CUSTOS_ERR_THROTTLED: 429,
  CUSTOS_ERR_STEP_UP: 403,
  CUSTOS_ERR_CONFLICT: 409,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class CustosError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** The input field the error is about, when there is one (`entry[3].birthDate`). */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CustosError';
    this.code = code;
    this.status = ErrorCodes[code];
    this.field = options.field;
  }
}

/** "Not found" and "not allowed" look the same to the caller; the audit entry keeps the real reason. */
export const notFound = (resource: string): CustosError =>
  new CustosError('CUSTOS_ERR_NOT_FOUND', `${resource} not found or no access`);

export const validationError = (field: string, problem: string): CustosError =>
  new CustosError('CUSTOS_ERR_VALIDATION', `${field}: ${problem}`, { field });

export const isCustosError = (e: unknown, code?: ErrorCode): e is CustosError =>
  e instanceof CustosError && (code === undefined || e.code === code);
