/**
 * Who is asking, for what purpose, from where. Every gate and service call takes one as its
 * first parameter; it is frozen so nothing downstream can change who the caller is.
 */
export type ActorKind = 'user' | 'patient' | 'system';

/** Purpose of use (after HL7 v3 PurposeOfUse: TREAT, ETREAT, HPAYMT, HOPERAT, PATRQT, …). */
export type Purpose =
  | 'treatment'
  | 'emergency'
  | 'payment'
  | 'operations'
  | 'patient-request'
  | 'import'
  | 'export'
  | 'audit'
  | 'maintenance';

export interface AccessContext {
  readonly actor: { readonly kind: ActorKind; readonly id: string };
  readonly role: string;
  readonly practiceId: string;
  readonly purpose: Purpose;
  /** The responsible user when acting on someone's behalf (NEN 7513). */
  readonly onBehalfOf?: string;
  readonly sessionId?: string;
  readonly clientAddress?: string;
  readonly userAgentHash?: string;
  readonly requestId: string;
  /** When the user last re-authenticated in this session (step-up), if ever. */
  readonly reauthenticatedAt?: Date;
}

/** Builds a frozen context. */
export function accessContext(ctx: AccessContext): AccessContext {
  return Object.freeze({ ...ctx, actor: Object.freeze({ ...ctx.actor }) });
}

/**
 * The named privileged actor for import, demo loading and maintenance. It is a distinct actor
 * kind with its own audit entries, never an unrestricted database handle.
 */
export function systemContext(options: {
  practiceId: string;
  purpose: Purpose;
  requestId: string;
  onBehalfOf?: string;
}): AccessContext {
  return accessContext({
    actor: { kind: 'system', id: 'system' },
    role: 'system',
    practiceId: options.practiceId,
    purpose: options.purpose,
    requestId: options.requestId,
    ...(options.onBehalfOf ? { onBehalfOf: options.onBehalfOf } : {}),
  });
}
