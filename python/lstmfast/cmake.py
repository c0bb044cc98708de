"""Where the C++ inference library is installed, for CMake and compilers (as pybind11's
`python -m pybind11 --cmakedir`):

    python -m lstmfast.cmake                # the CMake package directory: -Dlstmfast_DIR=...
    python -m lstmfast.cmake --includedir   # the directory holding lstmfast/lstmfast.hpp
    python -m lstmfast.cmake --libdir       # the directory holding liblstmfast.so

    find_package(lstmfast REQUIRED)
    target_link_libraries(app PRIVATE lstmfast::lstmfast)

`lstmfast --cmake-dir` prints the first one too.
"""

import argparse
import os

__all__ = ["get_cmake_dir", "get_include", "get_library_dir"]


def _installed(relative):
    import lstmfast

    for root in lstmfast.__path__:  # an editable install lists its build output here too
        path = os.path.join(root, relative)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"lstmfast's C++ library is not installed next to this package (no {relative} under "
        f"{list(lstmfast.__path__)}): reinstall it with `pip install lstmfast` (built with "
        "LSTMFAST_BUILD_RUNTIME=ON, the default)"
    )


def get_cmake_dir():
    """The directory of lstmfastConfig.cmake (CMake's lstmfast_DIR)."""
    return os.path.dirname(_installed(os.path.join("lib", "cmake", "lstmfast", "lstmfastConfig.cmake")))


def get_include():
    """The include directory: `#include <lstmfast/lstmfast.hpp>` finds the header under it."""
    return os.path.dirname(os.path.dirname(_installed(os.path.join("include", "lstmfast", "lstmfast.hpp"))))


def get_library_dir():
    """The directory of liblstmfast.so."""
    return os.path.dirname(_installed(os.path.join("lib", "liblstmfast.so")))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lstmfast.cmake", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cmakedir", action="store_true", help="the CMake package directory (the default)")
    group.add_argument("--includedir", action="store_true", help="the header's include directory")
    group.add_argument("--libdir", action="store_true", help="the library's directory")
    args = parser.parse_args(argv)
    try:
        print(get_include() if args.includedir else get_library_dir() if args.libdir else get_cmake_dir())
    except FileNotFoundError as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
