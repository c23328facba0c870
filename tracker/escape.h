// Escaping text for one line of output: a value from the environment in an
// error message, a string in a JSON report.
//
// Thread safety: a pure function; it allocates (not for hooks).
#ifndef LEAKWATCH_TRACKER_ESCAPE_H_
#define LEAKWATCH_TRACKER_ESCAPE_H_

#include <string>
#include <string_view>

namespace leakwatch {

// `s` with `"` and `\` backslash-escaped, newline, carriage return and tab
// as \n \r \t, and every other control character (and DEL) as \u00XX: the
// body of a valid JSON string, and text that cannot end a line or carry a
// terminal escape sequence. Other bytes are kept as they are.
std::string Escape(std::string_view s);

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_ESCAPE_H_
