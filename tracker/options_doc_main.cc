// Prints leakwatch's options as the Markdown table the README carries.
#include <cstdio>

#include "tracker/options.h"

int main() {
  std::printf("| variable | default | meaning |\n|---|---|---|\n");
  for (const leakwatch::OptionDoc& doc : leakwatch::OptionDocs()) {
    std::printf("| `%s` | %s | %s |\n", doc.variable, doc.default_text,
                doc.description);
  }
  return 0;
}
