// A simulated payment provider, as a storefront's payment step would call a real one: card
// 4000 0000 0000 0002 is declined, any other card is charged. Charges are idempotent by key.
import { randomUUID } from "node:crypto";

/** The card number the simulator declines (as payment providers' test cards do). */
export const DECLINED_CARD = "4000000000000002";

/** The outcome of a charge. */
export type Charge =
  | { status: "approved"; paymentRef: string; amountCents: number }
  | { status: "declined"; reason: string };

/** The simulated provider. */
export class PaymentSimulator {
  readonly #charges = new Map<string, Charge>();
  readonly #refunded = new Set<string>();
  readonly #maxCharges: number;

  constructor(maxCharges = 100_000) {
    this.#maxCharges = maxCharges;
  }

  /** Charges `amountCents` to `card`; the same `key` returns the first outcome. */
  async charge(key: string, amountCents: number, card: string): Promise<Charge> {
    const seen = this.#charges.get(key);
    if (seen) return seen;
    const digits = card.replace(/\s+/g, "");
    const charge: Charge =
      !/^\d{12,19}$/.test(digits) || digits === DECLINED_CARD
        ? { status: "declined", reason: digits === DECLINED_CARD ? "card declined" : "invalid card number" }
        : { status: "approved", paymentRef: `pay_${randomUUID().replaceAll("-", "")}`, amountCents };
    this.#charges.set(key, charge);
    if (this.#charges.size > this.#maxCharges) {
      const oldest = this.#charges.keys().next().value;
      if (oldest !== undefined) this.#charges.delete(oldest);
    }
    return charge;
  }

  /** Refunds a charge (when the hold expired before the order could be made). */
  async refund(paymentRef: string): Promise<void> {
    this.#refunded.add(paymentRef);
    if (this.#refunded.size > this.#maxCharges) {
      const oldest = this.#refunded.values().next().value;
      if (oldest !== undefined) this.#refunded.delete(oldest);
    }
  }

  /** Whether a charge was refunded. */
  refunded(paymentRef: string): boolean {
    return this.#refunded.has(paymentRef);
  }
}
