/**
 * Bash completion for vfud, generated from the option table (util/cli.ts OPTIONS) and the device
 * registry, like --help and the man page: option names, their values (levels, formats, groups,
 * files), `--device=` types, their `key=` names and their values (on|off, word lists, files),
 * and `vfud probe`. Works with or without the bash-completion package: it reads the word being
 * completed from COMP_LINE itself, so `=`, `,` and `:` inside it need no special set-up.
 *
 * @module
 */
import { DEVICE_TYPES } from "../devices/mod.ts";
import { BOOL_WORDS } from "../devices/options.ts";
import { type Completion, OPTIONS } from "./cli.ts";

/** Shell words of a completion that is a fixed list (empty for the others). */
function words(c: Completion | undefined): string {
  return Array.isArray(c) ? c.join(" ") : "";
}

/** `case` arms completing the value of each option (the value text is in $val). */
function optionValueArms(): string {
  const arms: string[] = [];
  for (const o of OPTIONS) {
    if (!o.arg) continue;
    const c = o.complete ?? "none";
    const body = Array.isArray(c)
      ? `_vfud_words "${words(c)}" "$val"`
      : c === "file"
      ? `_vfud_files "$val"`
      : c === "directory"
      ? `_vfud_files "$val" -d`
      : c === "group"
      ? `_vfud_reply "" $(compgen -g -- "$val")`
      : c === "device"
      ? `_vfud_device "$val"`
      : ":";
    arms.push(`    --${o.name}) ${body} ;;`);
  }
  return arms.join("\n");
}

/** `case` arms: for device type T and key K, complete the value $v after prefix $pre. */
function deviceValueArms(): string {
  const arms: string[] = [];
  for (const t of DEVICE_TYPES.values()) {
    for (const [k, spec] of Object.entries(t.options)) {
      const v = spec.value ?? "text";
      const body = Array.isArray(v)
        ? `_vfud_words "${v.join(" ")}" "$v" "$pre"`
        : v === "bool"
        ? `_vfud_words "${BOOL_WORDS.on[0]} ${BOOL_WORDS.off[0]}" "$v" "$pre"`
        : v === "path"
        ? `_vfud_files "$v" "" "$pre"`
        : ":";
      arms.push(`      ${t.name}:${k}) ${body} ;;`);
    }
  }
  return arms.join("\n");
}

/** The completion script (source it, or install it as completions/vfud). */
export function bashCompletion(): string {
  const longs = OPTIONS.map((o) => `--${o.name}${o.arg ? "=" : ""}`).join(" ");
  const types = [...DEVICE_TYPES.keys()].join(" ");
  const keys = [...DEVICE_TYPES.values()].map((t) =>
    `    ${t.name}) _vfud_words "${Object.keys(t.options).map((k) => `${k}=`).join(" ")}" ` +
    `"$last" "$pre" nospace ;;`
  ).join("\n");
  return `# bash completion for vfud(1) -*- shell-script -*-
# Generated from vfud's option table (util/completion.ts); do not edit.

# _vfud_reply PREFIX WORD...: offer PREFIX+WORD for each WORD, as text replacing the part of the
# word after its last =, : or , (where readline starts the word it completes).
_vfud_reply() {
  local pre=$1 w
  shift
  for w in "$@"; do COMPREPLY+=("\${_vfud_strip}\${pre}\${w}"); done
}

# _vfud_words "LIST" CUR [PREFIX] [nospace]: the words of LIST that start with CUR.
_vfud_words() {
  local w
  for w in $1; do
    [[ $w == "$2"* ]] && _vfud_reply "\${3-}" "$w"
  done
  [[ \${4-} == nospace ]] && compopt -o nospace 2>/dev/null
  return 0
}

# _vfud_files CUR [-d] [PREFIX]: file (or, with -d, directory) names starting with CUR.
_vfud_files() {
  local f
  while IFS= read -r f; do
    [[ -d $f ]] && f+=/
    _vfud_reply "\${3-}" "$f"
  done < <(compgen -f \${2:+-d} -- "$1")
  compopt -o nospace 2>/dev/null
  return 0
}

# _vfud_device SPEC: TYPE, then KEY=, then a KEY's value.
_vfud_device() {
  local spec=$1
  if [[ $spec != *,* ]]; then
    local t
    for t in ${types}; do [[ $t == "$spec"* ]] && _vfud_reply "" "$t,"; done
    compopt -o nospace 2>/dev/null
    return 0
  fi
  local type=\${spec%%,*} pre=\${spec%,*}, last=\${spec##*,}
  if [[ $last != *=* ]]; then
    case $type in
${keys}
    esac
    return 0
  fi
  local key=\${last%%=*} v=\${last#*=}
  pre+="$key="
  case $type:$key in
${deviceValueArms()}
  esac
}

_vfud() {
  COMPREPLY=()
  # The whole shell word under the cursor (readline splits it at = and :, we do not).
  local line=\${COMP_LINE:0:COMP_POINT}
  local word=\${line##*[[:space:]]}
  # What readline replaces: the part after the word's last break character.
  local tail=\${word##*[=:]}
  local _vfud_strip=""
  local cut=$((\${#word} - \${#tail}))
  local -a argv
  read -r -a argv <<<"$line"
  # n: the position of the word being completed (1 for the first argument)
  local n=\${#argv[@]}
  [[ -z $word ]] && n=$((n + 1))
  n=$((n - 1))
  if ((n >= 2)) && [[ \${argv[1]} == probe ]]; then
    if [[ $word == -* ]]; then
      _vfud_words "--json --registers-only --timeout=" "$word"
      [[ $word == --timeout* ]] && compopt -o nospace 2>/dev/null
    else
      _vfud_files "$word"
    fi
  elif [[ $word == --*=* ]]; then
    local opt=\${word%%=*} val=\${word#*=}
    _vfud_strip="$opt="
    case $opt in
${optionValueArms()}
    esac
  elif [[ $word == -* || -z $word ]]; then
    _vfud_words "${longs}" "$word"
    ((n == 1)) && [[ -z $word ]] && _vfud_words "probe" "$word"
    local c
    for c in "\${COMPREPLY[@]}"; do
      [[ $c == *= ]] && compopt -o nospace 2>/dev/null
    done
  elif ((n == 1)); then
    _vfud_words "probe" "$word"
  fi
  _vfud_cut "$cut"
  return 0
}

# Drops the first N characters of every reply (the part of the word readline keeps).
_vfud_cut() {
  local i
  for i in "\${!COMPREPLY[@]}"; do COMPREPLY[i]=\${COMPREPLY[i]:$1}; done
}

complete -F _vfud vfud
`;
}
