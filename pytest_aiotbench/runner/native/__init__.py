"""The native runner: C++ sources (CMakeLists.txt, src/, cmake/) that run on the device, and
the host-side builder that compiles them and bundles each framework's shared libraries."""
