/**
 * The manual of `vfud`, one source for three renderings: `vfud --help` ({@link usage}), the man
 * page vfud(1) ({@link manPage}, roff) and, from the same option table, the bash completion
 * (util/completion.ts). Options come from util/cli.ts OPTIONS, devices and their options from
 * the device registry (devices/mod.ts): a new option or device type shows up everywhere.
 *
 * @module
 */
import { DEVICE_TYPES, type DeviceOptionSpec } from "../devices/mod.ts";
import { OPTIONS, type OptionSpec } from "./cli.ts";
import { VFUD_VERSION } from "./capabilities.ts";

/** Text with `*word*` marking a name (bold in the man page), `_word_` a placeholder (italic). */
type Para = string;

/** One section of the manual; `help` sections also appear in --help. */
interface Section {
  title: string;
  paras: Para[];
  help?: boolean;
}

/** The forms of the command line. */
export const SYNOPSIS: readonly string[] = [
  "vfud --socket-path=PATH --device=TYPE,KEY=VALUE,... [OPTION]...",
  "vfud --fd=N --device=TYPE,KEY=VALUE,... [OPTION]...",
  "vfud --device=TYPE,KEY=VALUE,... [OPTION]...    (systemd socket activation)",
  "vfud probe [--json] [--registers-only] [--timeout=MS] SOCKET-PATH",
  "vfud --print-capabilities | --version | --help",
  "vfud                                            (no arguments: a demo disk)",
];

const DESCRIPTION: Para[] = [
  "vfud emulates a PCI device in an ordinary, unprivileged process and serves it to a virtual " +
  "machine monitor over a UNIX socket with the vfio-user protocol. QEMU attaches it with its " +
  "vfio-user-pci device; to the guest it is a plain PCI function.",
  "Like other backend programs (virtiofsd, qemu-storage-daemon) vfud never daemonizes, takes " +
  "its socket as --socket-path, --fd or from systemd socket activation, logs to stderr or the " +
  "journal, reports readiness to systemd and stops cleanly on SIGTERM.",
];

const TRAILER: Section[] = [
  {
    title: "PROBE",
    paras: [
      "vfud probe connects to a vfio-user server as a client and prints the negotiated " +
      "version, the device's regions and interrupts, its decoded PCI configuration space and " +
      "what the device says about itself (a disk's capacity and serial, a NIC's MAC address " +
      "and link). --json prints the same as JSON.",
      "All of it is read from registers but a virtio-blk serial, which the device only gives " +
      "in answer to a GET_ID request: for it the probe maps 16 KiB of its own memory, sets the " +
      "device up, sends one GET_ID, resets the device (status 0), restores the PCI registers " +
      "it changed and unmaps, leaving the device as it found it. It does so only when no " +
      "driver has set the device up; --registers-only skips it (no mapping, no write). A " +
      "server serving one client at a time, as vfud does, refuses the probe while a VMM is " +
      "connected.",
    ],
  },
  {
    title: "DEMO",
    help: true,
    paras: [
      "Without arguments vfud serves a virtio-blk disk backed by a sparse 1 GiB image in " +
      "./.state/ on ./.state/vfud.sock and prints the QEMU command line that attaches to it.",
    ],
  },
  {
    title: "SIGNALS",
    help: true,
    paras: [
      "SIGTERM and SIGINT stop vfud cleanly: no new clients, in-flight requests finish (or " +
      "fail after 1 s), backing files are flushed, the socket file vfud created is removed, " +
      "exit status 0 (1 when a 1.9 s deadline cut that short).",
    ],
  },
  {
    title: "EXIT STATUS",
    help: true,
    paras: [
      "0 after a clean stop (a signal, or the client of a connected --fd left), and after " +
      "--help, --version and --print-capabilities; 1 on a runtime error (a file that cannot " +
      "be opened, a socket that cannot be created: the message names the file); 2 on a usage " +
      "error (an unknown option or a bad value), found before anything is opened.",
    ],
  },
  {
    title: "ENVIRONMENT",
    paras: [
      "LISTEN_FDS, LISTEN_PID: systemd socket activation; one listening socket is served as " +
      "if given with --fd.",
      "NOTIFY_SOCKET: vfud sends READY=1 once it serves, STATUS= lines (the device, the " +
      "client, the request rate) while it runs and STOPPING=1 on SIGTERM.",
      "JOURNAL_STREAM: when it names stderr, logs go to the journal (--log-format=journal).",
    ],
  },
  {
    title: "FILES",
    paras: [
      "/usr/share/vfio-user/50-vfud-TYPE.json: backend descriptors for management software " +
      "(also looked for in /etc/vfio-user/ and $XDG_CONFIG_HOME/vfio-user/).",
      "/etc/vfud/INSTANCE.conf: the device of vfud@INSTANCE.service (VFUD_DEVICE=, " +
      "VFUD_OPTIONS=).",
      "/var/lib/vfud/: images of the systemd instances; the service runs as the system user " +
      "vfud, so an image must be readable and writable by it (chown vfud:vfud IMAGE).",
      "/run/vfud/INSTANCE.sock: the socket of vfud@INSTANCE.socket.",
    ],
  },
  {
    title: "EXAMPLES",
    paras: [
      "truncate -s 10G disk0.img",
      "vfud --socket-path=/tmp/disk0.sock --device=virtio-blk,file=disk0.img,serial=disk0",
      "vfud --socket-path=/run/vm1/nic.sock --socket-group=kvm " +
      "--device=e1000,netdev=tap,ifname=tap0",
      "vfud probe /tmp/disk0.sock",
    ],
  },
  {
    title: "SEE ALSO",
    paras: ["qemu-system-x86_64(1), qemu-storage-daemon(1), virtiofsd(1), systemd.socket(5)"],
  },
];

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** `--socket-path=PATH`, `-h, --help`. */
function optionTitle(o: OptionSpec): string {
  const long = `--${o.name}${o.arg ? `=${o.arg}` : ""}`;
  return o.short ? `-${o.short}, ${long}` : long;
}

/** The placeholder of a device option's value. */
export function valueName(spec: DeviceOptionSpec): string {
  const v = spec.value ?? "text";
  if (Array.isArray(v)) return v.join("|");
  return { bool: "on|off", size: "SIZE", uint: "N", mac: "MAC", path: "PATH", text: "TEXT" }[
    v as string
  ]!;
}

function optionHelp(o: OptionSpec): string {
  return o.default === undefined ? o.help : `${o.help} Default: ${o.default}.`;
}

function deviceOptionHelp(spec: DeviceOptionSpec): string {
  // The table's help may start with the accepted words ("on|off: ..."): shown once, in the name.
  const help = spec.help.replace(/^[a-z0-9|-]+\|[a-z0-9|-]+: /, "");
  return spec.required ? `${help} (required)` : help;
}

/** Wraps `text` to `width` columns, every line indented by `indent`. */
export function wrap(text: string, indent: number, width = 79): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(" ".repeat(indent) + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(" ".repeat(indent) + line);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// --help

/** The text of `vfud --help`. */
export function usage(): string {
  const out: string[] = ["vfud - vfio-user device server", "", "Usage:"];
  for (const s of SYNOPSIS) out.push(`  ${s}`);
  out.push("", "Options:");
  for (const o of OPTIONS) out.push(`  ${optionTitle(o)}`, ...wrap(optionHelp(o), 6));
  out.push("", "Devices (--device=TYPE,KEY=VALUE,...):");
  for (const t of DEVICE_TYPES.values()) {
    out.push(`  ${t.name}`, ...wrap(t.description, 6));
    for (const [k, spec] of Object.entries(t.options)) {
      out.push(`    ${k}=${valueName(spec)}`, ...wrap(deviceOptionHelp(spec), 8));
    }
  }
  for (const s of TRAILER.filter((s) => s.help)) {
    out.push("", `${s.title[0]}${s.title.slice(1).toLowerCase()}:`);
    for (const p of s.paras) out.push(...wrap(p, 2));
  }
  out.push("", "The manual page vfud(1) has more.");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// vfud(1)

/** Escapes text for roff: backslashes, and a leading dot or quote. */
export function roffEscape(text: string): string {
  const t = text.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  return /^[.']/.test(t) ? `\\&${t}` : t;
}

function roffOption(title: string): string {
  // --name=ARG: the name bold, the argument italic.
  return title.split(", ").map((part) => {
    const eq = part.indexOf("=");
    return eq < 0
      ? `\\fB${roffEscape(part)}\\fR`
      : `\\fB${roffEscape(part.slice(0, eq))}\\fR=\\fI${roffEscape(part.slice(eq + 1))}\\fR`;
  }).join(", ");
}

/** The man page vfud(1), in roff (man macros). */
export function manPage(): string {
  const out: string[] = [
    `.TH VFUD 1 "" "vfud ${VFUD_VERSION}" "User Commands"`,
    ".nh",
    ".ad l",
    ".SH NAME",
    "vfud \\- vfio\\-user device server",
    ".SH SYNOPSIS",
  ];
  for (const s of SYNOPSIS) out.push(".nf", roffEscape(s), ".fi");
  out.push(".SH DESCRIPTION");
  DESCRIPTION.forEach((p, i) => out.push(...(i ? [".PP"] : []), roffEscape(p)));
  out.push(".SH OPTIONS");
  for (const o of OPTIONS) out.push(".TP", roffOption(optionTitle(o)), roffEscape(optionHelp(o)));
  out.push(".SH DEVICES");
  for (const t of DEVICE_TYPES.values()) {
    out.push(".SS " + roffEscape(t.name), roffEscape(t.description));
    for (const [k, spec] of Object.entries(t.options)) {
      out.push(".TP", roffOption(`${k}=${valueName(spec)}`), roffEscape(deviceOptionHelp(spec)));
    }
  }
  for (const s of TRAILER) {
    out.push(`.SH ${s.title}`);
    s.paras.forEach((p, i) => {
      if (s.title === "EXAMPLES") out.push(".PP", ".nf", roffEscape(p), ".fi");
      else out.push(...(i ? [".PP"] : []), roffEscape(p));
    });
  }
  return out.join("\n") + "\n";
}
