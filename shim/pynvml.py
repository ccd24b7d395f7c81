import sys
from llmops.gpu.testing import FakeNvml, StateFileGpu
sys.modules[__name__] = FakeNvml([StateFileGpu(total_mib=81559, state_file='/tmp/gpu-t/state.json')])
