/* A shared object for tests/unit/elf_image_test.cc, built twice (BIND_NOW +
 * RELRO, and lazy). lw_elf_target is called and its address taken, so the
 * linker gives it one R_X86_64_GLOB_DAT slot that its PLT entry (.plt.got)
 * jumps through; lw_elf_called is only called, through an
 * R_X86_64_JUMP_SLOT slot. */

int lw_elf_target(int x);
int lw_elf_called(int x);

int lw_elf_user_call(int x) { return lw_elf_target(x); }

int lw_elf_user_call_called(int x) { return lw_elf_called(x); }

int (*lw_elf_user_address(void))(int) { return &lw_elf_target; }
