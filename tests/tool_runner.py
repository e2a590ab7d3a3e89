"""Running a tool script as its own process without paying for its imports
each time: a helper process imports torch, MMSeg and sanet_mmseg once (and
runs nothing), then forks a child per run, which takes the caller's working
folder, environment and arguments and runs the script as ``__main__``, its
output going to files. The child is a real process (its own exit status,
memory and state; a crash or ``sys.exit`` ends only it), started in about
0.04 s instead of the 3 to 4 s a new interpreter spends importing.

Only for scripts that do not depend on what has been imported before them:
a test about imports (which modules a command loads, warnings at import)
starts a new interpreter (``subprocess``) instead.
``SANET_TEST_FORK=0`` makes :func:`run_script` start a new interpreter
every time."""
import json
import os
import subprocess
import sys
import tempfile
import threading

# what the helper imports once: what every tool imports first
PRELOAD = ('torch', 'torchvision', 'mmengine.runner', 'mmseg.apis',
           'mmseg.models', 'mmseg.datasets', 'sanet_mmseg',
           'sanet_mmseg.models', 'sanet_mmseg.datasets')

HELPER = r'''
import json, os, runpy, sys
for name in sys.argv[1:]:
    __import__(name)
requests, replies = os.fdopen(os.dup(0)), os.fdopen(os.dup(1), 'w')
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
sys.stdin = open(os.devnull)
while True:
    line = requests.readline()
    if not line:
        break
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the tool's process
        code = 1
        try:
            os.setsid()  # its own process group, as a new process's
            os.chdir(job['cwd'])
            os.environ.clear()
            os.environ.update(job['env'])
            for fd, path in ((1, job['stdout']), (2, job['stderr'])):
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(out, fd)
                os.close(out)
            sys.stdout = open(1, 'w', closefd=False)
            sys.stderr = open(2, 'w', closefd=False)
            sys.argv = job['argv']
            sys.path[0] = os.path.dirname(os.path.abspath(job['argv'][0]))
            runpy.run_path(job['argv'][0], run_name='__main__')
            code = 0
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    replies.write(json.dumps(dict(pid=pid)) + '\n')
    replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps(dict(status=os.waitstatus_to_exitcode(status)))
                  + '\n')
    replies.flush()
'''

_helper = None
_lock = threading.Lock()


def _start_helper():
    global _helper
    if _helper is None or _helper.poll() is not None:
        _helper = subprocess.Popen(
            [sys.executable, '-c', HELPER, *PRELOAD], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd='/')
    return _helper


def run_script(script, *args, cwd, env=None, timeout=600):
    """Run ``python script args...`` in ``cwd`` with ``env`` (default:
    this process's environment); return a ``subprocess.CompletedProcess``
    (returncode, stdout, stderr) as ``subprocess.run(...,
    capture_output=True, text=True)`` does. A run past ``timeout`` seconds
    is killed and raises ``subprocess.TimeoutExpired``."""
    argv = [script, *args]
    if os.environ.get('SANET_TEST_FORK', '1') == '0':
        return subprocess.run([sys.executable, *argv], capture_output=True,
                              text=True, cwd=cwd, env=env, timeout=timeout)
    with _lock, tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, k) for k in ('stdout', 'stderr')}
        helper = _start_helper()
        helper.stdin.write(json.dumps(dict(
            argv=argv, cwd=os.path.abspath(cwd),
            env=dict(os.environ if env is None else env),
            **paths)) + '\n')
        helper.stdin.flush()
        pid = json.loads(helper.stdout.readline())['pid']
        killed = []

        def kill():
            killed.append(pid)
            os.killpg(pid, 9)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            reply = helper.stdout.readline()
        finally:
            timer.cancel()
        if not reply:
            raise RuntimeError('the tool runner stopped')
        outputs = {}
        for key, path in paths.items():
            with open(path, errors='replace') as f:
                outputs[key] = f.read()
        if killed:
            raise subprocess.TimeoutExpired(argv, timeout, outputs['stdout'],
                                            outputs['stderr'])
        return subprocess.CompletedProcess(argv, json.loads(reply)['status'],
                                           **outputs)
