#!/usr/bin/env bash
# check-down.sh [PART…]: runs `world.sh down [PART…]` and fails if a process the world started is
# left behind: every PID recorded in $WORLD_STATE/started.log (matched with its start time, so a
# reused PID is not blamed) and every process carrying this world's WORLD_OWNER environment mark
# (set by world_start, inherited by children) must be gone, except, after a partial down, the
# processes the parts still up track in their PID files.
set -Eeuo pipefail
WORLD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$WORLD_DIR/world.sh" down "$@"
# shellcheck source=lib/common.sh
. "$WORLD_DIR/lib/common.sh"
tracked=" "
for f in "$WORLD_STATE"/pids/*.pid; do
  [ -e "$f" ] || continue
  if p=$(world_pid "$(basename "$f" .pid)"); then tracked="$tracked$p "; fi
done
[ $# -gt 0 ] || [ "$tracked" = " " ] || die "PID files left after a full down: $tracked"
left=0
if [ -f "$WORLD_STATE/started.log" ]; then
  while read -r name pid st; do
    case $tracked in *" $pid "*) continue;; esac
    if [ "$(_proc_start "$pid" 2>/dev/null)" = "$st" ] && ! _proc_zombie "$pid"; then
      log "still running after down: $name (pid $pid)"; left=1
    fi
  done <"$WORLD_STATE/started.log"
fi
# any process (children included) that carries this world's WORLD_OWNER mark
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  case $tracked in *" $pid "*) continue;; esac
  [ "$pid" = $$ ] && continue
  if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qxF "WORLD_OWNER=$WORLD_STATE"; then
    log "still running after down: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120) (pid $pid)"; left=1
  fi
done
[ "$left" = 0 ] || die "world processes left behind after down"
[ $# -gt 0 ] || rm -f "$WORLD_STATE/started.log"
log "down ${*:-(everything)} left no world process behind"
