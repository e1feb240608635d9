/**
 * At most `perTurn` admin requests start their work per event loop turn; the rest wait for the next
 * turns, in arrival order. The admin server shares its thread with the data plane: 500 services
 * registering at once would otherwise run 500 handlers (body, validation, store, response) back to
 * back, and every proxied byte would wait behind them. With a budget, a connection's next read
 * waits for at most `perTurn` handlers.
 *
 * Costs an admin request at most one loop turn of delay per `perTurn` requests ahead of it.
 */
export class TurnBudget {
  readonly #perTurn: number;
  #startedThisTurn = 0;
  readonly #waiting: (() => void)[] = [];
  /** Index of the next waiter to admit (a queue without O(n) shifts). */
  #head = 0;
  #turnScheduled = false;

  constructor(perTurn: number) {
    if (!Number.isInteger(perTurn) || perTurn < 1) throw new RangeError(`perTurn must be a positive integer, got ${perTurn}`);
    this.#perTurn = perTurn;
  }

  /** Resolves when the caller may start its work: at once while this turn has budget left. */
  admit(): Promise<void> {
    this.#scheduleTurn();
    if (this.#startedThisTurn < this.#perTurn && this.#head === this.#waiting.length) {
      this.#startedThisTurn += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #scheduleTurn(): void {
    if (this.#turnScheduled) return;
    this.#turnScheduled = true;
    setImmediate(() => this.#nextTurn());
  }

  #nextTurn(): void {
    this.#turnScheduled = false;
    this.#startedThisTurn = 0;
    while (this.#head < this.#waiting.length && this.#startedThisTurn < this.#perTurn) {
      this.#startedThisTurn += 1;
      this.#waiting[this.#head++]!();
    }
    if (this.#head === this.#waiting.length) {
      this.#waiting.length = 0;
      this.#head = 0;
    } else {
      this.#scheduleTurn();
    }
  }
}
