"""Drives `svoct oct console-user add NAME` on a pseudo-terminal (the test of
crates/cli/tests/cli_console_user.rs): argv = SVOCT CONFIG NAME FIRST SECOND, where FIRST and
SECOND are what is typed at the two prompts ("^C" types Ctrl-C at the first one instead).
Prints everything the terminal showed, then a last line `echo=on|off exit=N`: whether the
terminal echoes again once the command ended, and its exit code."""
import os
import pty
import sys
import termios

svoct, config, name, first, second = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    os.execv(svoct, [svoct, "oct", "--config", config, "console-user", "add", name])

shown = b""


def read_until(needle):
    global shown
    while needle not in shown:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            chunk = b""
        if not chunk:
            sys.stdout.write(shown.decode(errors="replace"))
            sys.exit("the terminal closed before %r" % needle)
        shown += chunk


read_until(b"password for ")
if first == "^C":
    os.write(fd, b"\x03")
else:
    os.write(fd, first.encode() + b"\n")
    read_until(b"again: ")
    os.write(fd, second.encode() + b"\n")
_, status = os.waitpid(pid, 0)
# The settings the command left on the terminal (the master reads the pair's settings).
echo = termios.tcgetattr(fd)[3] & termios.ECHO
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
sys.stdout.write(shown.decode(errors="replace"))
sys.stdout.write("\necho=%s exit=%d\n" % ("on" if echo else "off", os.waitstatus_to_exitcode(status)))
