// A notifier on a host whose clock is 30 minutes behind, and then put right (an NTP step) while it
// runs. Its wall clock is libfaketime's (FAKETIME_TIMESTAMP_FILE, which this script rewrites to step
// it); the endpoint's proxy (argv[2]) refuses a signature more than 5 minutes off its own clock, as
// AWS does. Prints a line per phase: `phase<n> <drain result> <failures>`.
import { writeFileSync } from 'node:fs';
import { EventBridgeNotifier, type DeliveryFailure } from '../../src/index.js';
import { fakeEvent, fakeState } from '../fixtures.js';

const clockFile = process.env.FAKETIME_TIMESTAMP_FILE!;
const failures: Array<[string, string | undefined, number[]]> = [];
const notifier = new EventBridgeNotifier({
  busName: 'bus',
  clientConfig: { endpoint: process.argv[2]!, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 },
  onError: (f: DeliveryFailure) => void failures.push([f.reason, f.errorCode, f.events.map((e) => e.seq)]),
});
const phase = async (n: number, seq: number): Promise<void> => {
  notifier.handle(fakeEvent(seq), fakeState);
  process.stdout.write(`phase${n} ${JSON.stringify(await notifier.drain(20_000))} ${JSON.stringify(failures)}\n`);
};
// 30 minutes behind: the first request is refused, the SDK learns the offset from the answer's Date.
await phase(1, 1);
// The host's clock is put right: the offset the SDK keeps now signs 30 minutes ahead.
writeFileSync(clockFile, '+0\n');
await phase(2, 2);
await notifier.close();
