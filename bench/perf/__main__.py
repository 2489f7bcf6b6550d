import sys

from bench.perf.runner import main

sys.exit(main())
