/* A shared object for tests/unit/elf_image_test.cc: defines the functions the
 * user objects import. It also calls and takes the address of its own
 * lw_elf_target, so it has relocations against a symbol it defines. */

int lw_elf_target(int x) { return x + 1; }

int lw_elf_called(int x) { return x + 2; }

int lw_elf_provider_call(int x) { return lw_elf_target(x); }

int (*lw_elf_provider_address(void))(int) { return &lw_elf_target; }
