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

/**
 * The codes of Node's errors for a certificate it refuses (OpenSSL's verify results, and
 * ERR_TLS_CERT_ALTNAME_INVALID for a certificate of another host name): self-signed, of a CA Node
 * does not trust, expired or not yet valid, revoked, of another host. Connecting again meets the
 * same certificate: the CLI gives up at once instead of retrying until its timeout.
 */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Whether `err` is Node's refusal of a server's certificate (see {@link CERTIFICATE_ERRORS}): one that retrying does not mend. */
export function isCertificateError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return err instanceof Error && typeof code === 'string' && CERTIFICATE_ERRORS.has(code);
}

/**
 * OpenSSL's words for an answer to the TLS handshake that is not TLS: a server that speaks plain
 * HTTP answers the ClientHello with `HTTP/1.1 400 ...`, whose first bytes OpenSSL reads as a record
 * of an unknown version (or of an impossible length).
 */
const NOT_TLS_WORDS = /wrong version number|packet length too long/i;

/**
 * Whether `err` says that the server answered a TLS handshake (a `wss://` URL) in something other
 * than TLS: a plain `ws://` server. Connecting again meets the same server: the CLI gives up at once,
 * saying which scheme to use, instead of retrying OpenSSL's words until its timeout.
 */
export function isNotTlsAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (!(err instanceof Error)) return false;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return true;
  // ws reports it as the failed write of the handshake: `write EPROTO ...:wrong version number:...`.
  return code === 'EPROTO' && NOT_TLS_WORDS.test(err.message);
}

/** Why a `wss://` connection failed when {@link isNotTlsAnswer}: OpenSSL's reason, and the scheme to use. */
export function notTlsReason(err: Error): string {
  const words = NOT_TLS_WORDS.exec(err.message)?.[0] ?? (err as { reason?: string }).reason ?? 'not TLS';
  return `the server does not speak TLS: its answer to the TLS handshake was not TLS, OpenSSL says "${words}"; use ws://, or http:// for a dashboard page`;
}

/**
 * `reason` for a failed `ws://` connection, with the likeliest cause when the server closed it
 * before its answer (Node's `socket hang up`, or `read ECONNRESET` when it reset it): a server that
 * speaks only TLS closes a plain connection without a word. Said, not given up on: a server going
 * down does the same.
 */
export function withPlainHangUpHint(reason: string, err: unknown, url: string): string {
  const message = (err as Error | null | undefined)?.message;
  if (!url.startsWith('ws:') || (err as { code?: unknown } | null | undefined)?.code !== 'ECONNRESET' || (message !== 'socket hang up' && message !== 'read ECONNRESET')) return reason;
  return `${reason}; the server closed the connection without answering; does it want TLS? then use wss://, or https:// for a dashboard page`;
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
 * The command's error for output it could not write: its reader went away (`| head -1`, EPIPE), which
 * stops it as Ctrl-C does (exit 130, without a word); any other failure (a full disk) is said, exit 4.
 */
export function outputError(err: unknown): CliError {
  if ((err as { code?: unknown } | null)?.code === 'EPIPE') return new Interrupted();
  return new CliError(`cannot write the output: ${err instanceof Error ? err.message : String(err)}`, ExitCode.UNAVAILABLE);
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
