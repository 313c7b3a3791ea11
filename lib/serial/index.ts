/**
 * lib/serial: port listing and detection, the monitor and its filters, and
 * the port hand-off between a monitor and an upload. See README.md.
 */
export { listPorts, listFromSysfs, normalizeUsbId, usbIdOf, guessBoards, describePort, KNOWN_BRIDGES } from "./ports.js";
export type { PortInfo, ListPortsOptions, BoardUsbIds, PortGuess } from "./ports.js";
export { findPort, touch1200, waitForNewPort, PortNotFoundError, PortAmbiguousError } from "./detect.js";
export type { FindPortOptions, TouchOptions, WaitForPortOptions } from "./detect.js";
export { openSerialPort, portOpenError } from "./connection.js";
export type { PortOpener, SerialConnection, OpenOptions, ModemLines, Parity } from "./connection.js";
export { acquirePortForUpload, MonitorPortLock, PortBusyError, defaultLockDir, RELEASE_SIGNAL } from "./lock.js";
export type { AcquireOptions } from "./lock.js";
export { runMonitor, MonitorCheckFailedError, DEFAULT_MONITOR_SETTINGS } from "./monitor.js";
export type { RunMonitorOptions, MonitorResult, MonitorSettings } from "./monitor.js";
export { createFilterChain, validateFilters, UnknownFilterError, FILTER_NAMES, timestamp } from "./filters.js";
export type { FilterChain, MonitorFilter, Eol } from "./filters.js";
export { decoderFromManifest, ExceptionDecoder, parseAddr2line } from "./decoder.js";
export type { DecoderConfig } from "./decoder.js";
