/**
 * Boards across every registered platform: listing with a filter (`kiln
 * boards`) and lookup by id with near-miss suggestions.
 */
import { nearest, UnknownBoardError } from "../core/errors.js";
import { allPlatforms } from "./index.js";
import type { BoardDefinition } from "./types.js";

export function allBoards(): BoardDefinition[] {
  return allPlatforms().flatMap((p) => p.boards());
}

/** Boards whose id, name, platform, vendor or MCU contains every word of `filter` (case-insensitive). */
export function filterBoards(filter: string | undefined): BoardDefinition[] {
  const words = (filter ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  return allBoards().filter((b) => {
    const hay = `${b.id} ${b.name} ${b.platform} ${b.vendor ?? ""} ${b.mcu}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** The board with this exact id; throws UnknownBoardError (exit 3) with the closest ids. */
export function findBoard(id: string): BoardDefinition {
  const boards = allBoards();
  const found = boards.find((b) => b.id === id);
  if (found) return found;
  throw new UnknownBoardError(id, nearest(id, boards.map((b) => b.id)));
}

/** `16000000` → `16 MHz`. */
export function formatClock(hz: number): string {
  return hz % 1_000_000 === 0 ? `${hz / 1_000_000} MHz` : `${(hz / 1_000_000).toFixed(3).replace(/0+$/, "")} MHz`;
}

/** `32256` → `31.5 KiB`; `2048` → `2 KiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const k = n / 1024;
  return `${Number.isInteger(k) ? k : k.toFixed(1)} KiB`;
}
