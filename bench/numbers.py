"""Reading whole numbers: `python bench/numbers.py [--quick] [--model M]` runs bench/read_numbers.py (its
docstring tells what it measures).

Every script in bench/ runs with this folder first on sys.path, and a file here named `numbers.py` hides the
standard library's `numbers`, which numpy and decimal import; every benchmark would then fail to start. So
this file does two things: run as a script, it runs the benchmark; imported as `numbers`, it is the standard
library's module, executed from the standard library's own file.
"""

import os
import sysconfig

if __name__ == "__main__":
    import runpy

    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "read_numbers.py"), run_name="__main__")
else:
    _path = os.path.join(sysconfig.get_path("stdlib"), "numbers.py")
    with open(_path, encoding="utf-8") as _file:
        exec(compile(_file.read(), _path, "exec"))
