# shellcheck shell=bash
# scripts/sandbox-lib.sh — what scripts/pg-sandbox and scripts/mysql-sandbox
# share (sourced, not run): the command line, the sandbox directory and its
# marker file, the choice of a free port on 127.0.0.1, and checks on the
# server's processes.
#
# The sourcing script sets, before sourcing:
#   SANDBOX      its name (pg-sandbox, mysql-sandbox): the prefix of its
#                messages, and DIR/.$SANDBOX marks DIR as one of its sandboxes
#   SERVER_USER  the user the server runs as when the script runs as root
# defines cmd_start and cmd_stop (they find the sandbox directory in DIR), and
# ends with `sandbox_main "$@"`.

START_ATTEMPTS=10     # ports tried before giving up
# shellcheck disable=SC2034  # used by the sourcing scripts
READY_DEADLINE_S=60   # how long to wait for the server to accept connections
PORT_MIN=20000        # random ports come from [PORT_MIN, PORT_MAX), below
PORT_MAX=32000        # Linux's ephemeral range (32768+) used by clients
MARKER=.$SANDBOX      # file that marks DIR as ours, so stop may remove it

die() {
  echo "$SANDBOX: $*" >&2
  exit 1
}

usage() {
  echo "usage: $SANDBOX start|stop DIR" >&2
  exit 2
}

# Unset the environment variables whose names match one of the patterns.
unset_env() {
  local var pattern
  for var in $(compgen -e); do
    for pattern in "$@"; do
      # shellcheck disable=SC2053  # $pattern is a glob
      if [[ $var == $pattern ]]; then unset "$var"; fi
    done
  done
}

# Print the last lines of the server log (on failure).
log_tail() {
  local log=$1/server.log
  if [[ -s $log ]]; then
    echo "$SANDBOX: last lines of $log:" >&2
    tail -n 30 "$log" | sed 's/^/  | /' >&2
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

random_port() {
  echo $((PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN)))
}

# True if process $1 exists and is not a zombie (an exited server stays one
# until its parent reaps it). With a second argument: and its name is $2.
proc_running() {
  local pid=$1 name=${2:-} stat comm
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1  # no such process
  comm=${stat#*(}
  comm=${comm%%)*}
  [[ -z $name || $comm == "$name" ]] || return 1
  stat=${stat##*) }          # skip "pid (comm) "; the state comes next
  [[ ${stat%% *} != Z ]]
}

# Check that the server's user can reach DIR: every parent must be searchable.
check_traversable() {
  local dir=$1 d
  ((EUID == 0)) || return 0
  d=$dir
  while [[ $d != / ]]; do
    d=$(dirname "$d")
    if ! runuser -u "$SERVER_USER" -- test -x "$d"; then
      die "user $SERVER_USER cannot enter $d (parent of $dir); use a directory under /tmp"
    fi
  done
}

# Start of `start`: DIR must be absent or empty; create it and mark it as ours.
sandbox_create() {
  if [[ -e $DIR ]]; then
    [[ -d $DIR ]] || die "$DIR exists and is not a directory"
    [[ -z $(ls -A "$DIR") ]] || die "$DIR is not empty"
  else
    mkdir -p "$DIR"
  fi
  touch "$DIR/$MARKER"
}

# As root: give DIR to the server's user, who must be able to reach it.
sandbox_chown() {
  if ((EUID == 0)); then
    chown -R "$SERVER_USER:$SERVER_USER" "$DIR"
    check_traversable "$DIR"
  fi
}

# Start of `stop`: DIR must be a directory that `start` marked.
sandbox_check_ours() {
  [[ -d $DIR ]] || die "no such directory: $DIR"
  # Refuse to delete a directory that this script did not set up.
  [[ -e $DIR/$MARKER ]] || die "$DIR is not a $SANDBOX directory; not removing it"
}

# start_on_free_port START_FN: call START_FN PORT with random ports that
# nothing listens on until it returns 0 (a server is up on PORT), and set PORT.
# START_FN returns nonzero when its server has exited (and nothing of it is
# left running). If DIR/server.log says 'Address already in use' since the
# call, another server bound the port after our probe and the next port is
# tried; any other failure, or START_ATTEMPTS ports taken, ends the script.
start_on_free_port() {
  local start_fn=$1 log=$DIR/server.log attempt offset
  for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
    PORT=$(random_port)
    if port_in_use "$PORT"; then continue; fi
    offset=$(($(stat -c %s "$log" 2>/dev/null || echo 0) + 1))
    if "$start_fn" "$PORT"; then return 0; fi
    if tail -c "+$offset" "$log" 2>/dev/null | grep -q 'Address already in use'; then
      echo "$SANDBOX: port $PORT was taken, retrying" >&2
      continue
    fi
    log_tail "$DIR"
    die "server did not start"
  done
  log_tail "$DIR"
  die "no free port after $START_ATTEMPTS attempts"
}

# The command line: `start DIR` or `stop DIR`. Sets DIR to the absolute path,
# so the script works from any directory; then leaves the caller's directory,
# which the server's user may not be allowed to enter.
sandbox_main() {
  (($# == 2)) || usage
  DIR=$(realpath -m -- "$2")
  cd /
  case $1 in
    start) cmd_start ;;
    stop) cmd_stop ;;
    *) usage ;;
  esac
}
