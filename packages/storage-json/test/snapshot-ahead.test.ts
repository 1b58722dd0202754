import {
  readFile,
  readdir,
  rename,
  truncate,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProgressTracker, type ProgressEvent } from "@progress/core";
import { EventFactory } from "@progress/core/testing";
import { JsonFileStore } from "../src/index.js";
import { encodeSnapshot } from "../src/record-codec.js";
import { recordingLogger, removeTempDirs, tempDir } from "./helpers.js";

afterAll(removeTempDirs);

// A sound snapshot (its checksum holds, its upgrade is this one) is written only once the log's
// write up to its offset has returned: a log that no longer reaches it lost acknowledged events.
// Replaying the log alone would take the upgrade back in time, and the next append would reuse the
// lost seqs for other events (which sinks and readers that saw the lost ones take for those).

async function collect(
  it: AsyncIterable<ProgressEvent>
): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

function lineEnds(buf: Buffer): number[] {
  const ends: number[] = [];
  for (let at = buf.indexOf(0x0a); at >= 0; at = buf.indexOf(0x0a, at + 1))
    ends.push(at + 1);
  return ends;
}

/** 10 events appended one by one with a snapshot every 5: the snapshot is at seq 10, the end of the log. */
async function seeded(
  durability: "fsync" | "none"
): Promise<{ dir: string; log: string; snap: string; f: EventFactory }> {
  const dir = await tempDir("snapshot-ahead");
  const store = new JsonFileStore({
    directory: dir,
    snapshotEvery: 5,
    durability,
  });
  const f = new EventFactory("u1");
  while (f.lastSeq < 10) {
    const expected = f.lastSeq;
    await store.append("u1", f.batch(1), expected, f.state!);
  }
  await store.close();
  const log = join(dir, "upgrades", "u1", "events.jsonl");
  const snap = join(dir, "upgrades", "u1", "snapshot.json");
  const s = JSON.parse(await readFile(snap, "utf8")) as {
    lastSeq: number;
    offset: number;
  };
  expect([s.lastSeq, s.offset]).toEqual([10, (await readFile(log)).length]);
  return { dir, log, snap, f };
}

/** What is on disk in the upgrade's folder, byte for byte. */
async function folder(dir: string): Promise<Record<string, string>> {
  const at = join(dir, "upgrades", "u1");
  const out: Record<string, string> = {};
  for (const name of (await readdir(at)).sort())
    out[name] = (await readFile(join(at, name))).toString("base64");
  return out;
}

/** Every read and write path refuses with DATA_CORRUPTED (list() leaves the upgrade out), and nothing is written. */
async function expectRefused(
  dir: string,
  logLastSeq: number | undefined
): Promise<void> {
  const before = await folder(dir);
  const logger = recordingLogger();
  const store = new JsonFileStore({ directory: dir, logger });
  const expected = {
    code: "DATA_CORRUPTED",
    message: expect.stringMatching(
      /snapshot\.json holds .*seq 10.*events\.jsonl.*lost acknowledged events.*move .*snapshot\.json away/s
    ),
    context: expect.objectContaining({
      upgradeId: "u1",
      file: join(dir, "upgrades", "u1", "events.jsonl"),
      snapshot: join(dir, "upgrades", "u1", "snapshot.json"),
      snapshotLastSeq: 10,
      logLastSeq,
    }),
  };
  await expect(store.load("u1")).rejects.toMatchObject(expected);
  await expect(collect(store.readEvents("u1", 0))).rejects.toMatchObject(
    expected
  );
  await expect(
    collect(store.readEvents("u1", logLastSeq ?? 0))
  ).rejects.toMatchObject(expected);
  await expect(
    ProgressTracker.open({
      upgradeId: "u1",
      planId: "p",
      clusterName: "c",
      store,
    })
  ).rejects.toMatchObject(expected);
  const other = new EventFactory("u1");
  if (logLastSeq) other.batch(logLastSeq);
  await expect(
    store.append("u1", other.batch(1), logLastSeq ?? 0, other.state!)
  ).rejects.toMatchObject(expected);
  expect(await store.list()).toEqual([]);
  expect(
    logger.lines.some(
      (l) =>
        l.level === "error" &&
        (l.obj.err as { code?: string } | undefined)?.code === "DATA_CORRUPTED"
    )
  ).toBe(true);
  await store.close();
  expect(await folder(dir)).toEqual(before);
}

describe("a sound snapshot the log does not reach", () => {
  for (const durability of ["fsync", "none"] as const) {
    it(`(the log cut back to 7 of its 10 lines, written with durability ${durability}) is refused by an fsync store with DATA_CORRUPTED, and nothing is written`, async () => {
      const { dir, log, snap, f } = await seeded(durability);
      await truncate(log, lineEnds(await readFile(log))[6]!);
      await expectRefused(dir, 7);

      // The recovery the message names: moving the snapshot away goes on from the log, at seq 7.
      await rename(snap, `${snap}.aside`);
      const store = new JsonFileStore({ directory: dir, durability });
      expect((await store.load("u1"))!.lastSeq).toBe(7);
      const again = new EventFactory("u1");
      again.state = (await store.load("u1"))!;
      await store.append("u1", again.batch(1), 7, again.state!);
      expect((await store.load("u1"))!.lastSeq).toBe(8);
      await store.close();
      expect(f.lastSeq).toBe(10);
    });
  }

  // durability 'none' loses the log's last events in a machine crash by design, mostly with no
  // snapshot to tell: a store that runs so goes on from the log alone, and says so as an error.
  it("(the log cut back to 7 of its 10 lines) is said as an error by a store with durability 'none', which goes on from the log", async () => {
    const { dir, log } = await seeded("none");
    await truncate(log, lineEnds(await readFile(log))[6]!);
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, durability: "none", logger });
    expect((await store.load("u1"))!.lastSeq).toBe(7);
    expect(
      logger.lines.some(
        (l) =>
          l.level === "error" &&
          (l.obj.err as { code?: string } | undefined)?.code === "DATA_CORRUPTED" &&
          /going on from the log alone/.test(l.msg ?? "")
      )
    ).toBe(true);
    const again = new EventFactory("u1");
    again.state = (await store.load("u1"))!;
    await store.append("u1", again.batch(1), 7, again.state!);
    expect((await collect(store.readEvents("u1", 0))).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await store.close();
  });

  it("(the log one byte short of its offset: its last newline lost) says where the log ends", async () => {
    const { dir, log } = await seeded("fsync");
    const size = (await readFile(log)).length;
    await truncate(log, size - 1);
    const store = new JsonFileStore({ directory: dir });
    await expect(store.load("u1")).rejects.toMatchObject({
      code: "DATA_CORRUPTED",
      message: expect.stringContaining(`ends at byte ${size - 1}, before the snapshot's offset`),
    });
    await store.close();
  });

  it("(no log at all) is refused too", async () => {
    const { dir, log } = await seeded("none");
    await rename(log, `${log}.aside`);
    await expectRefused(dir, 0);
  });

  it("(the log cut back, then written on with other events, so that the offset falls inside a line) is refused", async () => {
    const { dir, log, snap } = await seeded("none");
    const text = await readFile(snap);
    await truncate(log, lineEnds(await readFile(log))[6]!);
    await rename(snap, `${snap}.aside`);
    const store = new JsonFileStore({ directory: dir, durability: "none" });
    const other = new EventFactory("u1");
    other.state = (await store.load("u1"))!;
    const taskId = Object.keys(other.state!.tasks)[0]!;
    const long = Array.from({ length: 5 }, (_, i) =>
      other.next("task.progress", {
        taskId,
        message: "m".repeat(1000),
        percentage: i,
      })
    );
    await store.append("u1", long, 7, other.state!);
    await store.close();
    await writeFile(snap, text);
    const s = JSON.parse(text.toString()) as { offset: number };
    expect(lineEnds(await readFile(log))).not.toContain(s.offset);
    await expectRefused(dir, 12);
  });

  it("(the line that ends at its offset holds another seq) is refused", async () => {
    const { dir, log, snap, f } = await seeded("none");
    // A sound snapshot that says seq 9 ends where line 10 does.
    const state = { ...f.state!, lastSeq: 9 };
    await writeFile(
      snap,
      encodeSnapshot(
        { v: 1, lastSeq: 9, offset: (await readFile(log)).length },
        JSON.stringify(state)
      )
    );
    const store = new JsonFileStore({ directory: dir });
    await expect(store.load("u1")).rejects.toMatchObject({
      code: "DATA_CORRUPTED",
      context: expect.objectContaining({ snapshotLastSeq: 9, logLastSeq: 10 }),
    });
    await store.close();
  });

  it("is not confused with a damaged snapshot (bad checksum, torn): the log is replayed, as before", async () => {
    for (const damage of [
      (t: string) => t.replace('"lastSeq":10,', '"lastSeq":11,'),
      (t: string) => t.slice(0, t.length >> 1),
    ]) {
      const { dir, log, snap } = await seeded("fsync");
      await truncate(log, lineEnds(await readFile(log))[6]!);
      await writeFile(snap, damage(await readFile(snap, "utf8")));
      const store = new JsonFileStore({ directory: dir });
      expect((await store.load("u1"))!.lastSeq).toBe(7);
      expect(
        (await collect(store.readEvents("u1", 0))).map((e) => e.seq)
      ).toEqual([1, 2, 3, 4, 5, 6, 7]);
      await store.close();
    }
  });

  it("is not confused with a torn last write after it (never acknowledged): that is cut, silently, as before", async () => {
    const { dir, log } = await seeded("fsync");
    await writeFile(
      log,
      Buffer.concat([
        await readFile(log),
        Buffer.from('{"c":"00000000","w":"0000000000'),
      ])
    );
    const store = new JsonFileStore({ directory: dir });
    expect((await store.load("u1"))!.lastSeq).toBe(10);
    expect((await store.list()).map((r) => r.upgradeId)).toEqual(["u1"]);
    const f = new EventFactory("u1");
    f.state = (await store.load("u1"))!;
    await store.append("u1", f.batch(1), 10, f.state!);
    expect((await store.load("u1"))!.lastSeq).toBe(11);
    await store.close();
  });
});
