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

/** An error the CLI reports as one line and an exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = ExitCode.USAGE) {
    super(message);
    this.exitCode = exitCode;
  }
}
