/** Exit codes of the `progress` command, for scripts. */
export const ExitCode = {
  /** Done; for `watch`, the upgrade completed. */
  OK: 0,
  /** `watch`: the upgrade failed or was cancelled. */
  UPGRADE_FAILED: 1,
  /** A bad command line: unknown command or option, bad URL. */
  USAGE: 2,
  /** The folder, upgrade or URL target does not exist. */
  NOT_FOUND: 3,
  /** The source could not be reached or read (Redis down, connection refused, damaged data). */
  UNAVAILABLE: 4,
  /** Interrupted (Ctrl+C). */
  INTERRUPTED: 130,
} as const;

/** OpenSSL's words for a certificate chain Node does not trust: a private CA's, or a self-signed one. */
const UNTRUSTED_CERTIFICATE = /unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate/i;

/**
 * `reason` (why a connection failed), with how to trust a private CA when it is a certificate Node
 * does not trust: the CLI has no option of its own for it, Node reads the CA file at start.
 */
export function withCertificateHint(reason: string): string {
  return UNTRUSTED_CERTIFICATE.test(reason) ? `${reason}; to trust a private CA, run with NODE_EXTRA_CA_CERTS=<its PEM file>` : reason;
}

/** An error the CLI reports as one line and an exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = ExitCode.USAGE) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * The command was stopped (Ctrl-C, SIGTERM, stdout closed by its reader) while it waited for its
 * source: exit 130 without a message, as a `watch` stopped by Ctrl-C ends.
 */
export class Interrupted extends CliError {
  constructor() {
    super('interrupted', ExitCode.INTERRUPTED);
  }
}

/**
 * `work`, or an {@link Interrupted} rejection as soon as `signal` aborts. The CLI's signal handler
 * only aborts its controller (a second Ctrl-C exits at once): a wait that does not listen to that
 * signal (a store's read, which for Redis ends only at its 3 s timeout, and for a folder on a hung
 * network file system never) would swallow the first Ctrl-C and then report the source's failure
 * (exit 4) instead of the interruption. What `work` does after that is left to the caller's
 * clean-up (closing the store ends it); its late rejection is not an unhandled one.
 */
export function untilInterrupted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(new Interrupted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(new Interrupted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
