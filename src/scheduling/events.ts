/**
 * Appointment events: what scheduling tells the rest of the system after a change has committed
 * (reminders, outbound webhooks). An event carries ids and the time slot only; whoever turns it
 * into a message or a disclosure reads what it may through the gate, under its own policy.
 */
export type AppointmentEventKind = 'booked' | 'rescheduled' | 'cancelled' | 'no-show';

export interface AppointmentEvent {
  readonly kind: AppointmentEventKind;
  readonly practiceId: string;
  readonly appointmentId: string;
  readonly patientId: string;
  readonly clinicianId: string;
  readonly room: string | null;
  readonly start: Date;
  readonly end: Date;
  /** When the change committed. */
  readonly at: Date;
}

/** Called once per committed change, after the commit; a listener's failure never undoes the change. */
export type AppointmentListener = (event: AppointmentEvent) => Promise<void>;

/** The listeners of one server, called in order; each failure is reported, not thrown. */
export class AppointmentEvents {
  readonly #listeners: AppointmentListener[] = [];
  readonly #onError: (e: unknown, event: AppointmentEvent) => void;

  constructor(onError: (e: unknown, event: AppointmentEvent) => void = () => undefined) {
    this.#onError = onError;
  }

  subscribe(listener: AppointmentListener): void {
    this.#listeners.push(listener);
  }

  async emit(event: AppointmentEvent): Promise<void> {
    for (const l of this.#listeners) {
      try {
        await l(event);
      } catch (e) {
        this.#onError(e, event);
      }
    }
  }
}
