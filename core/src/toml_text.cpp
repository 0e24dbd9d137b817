// Re-prints toml++'s output with shortest round-trip floats, by scanning value positions outside strings.
#include "sapling/internal/toml_text.hpp"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <vector>

namespace sapling {

namespace {

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-' || c == '.' || c == ':';
}

// `token` rewritten when it is a decimal float (not an integer, date, time or hex/octal/binary integer).
std::string shortest_float(const std::string& token) {
  static const std::regex decimal_float(R"([+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
  if (token.find_first_of(".eE") == std::string::npos || !std::regex_match(token, decimal_float)) return token;
  const double value = std::strtod(token.c_str(), nullptr);
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  std::string out(buf, res.ptr);
  const auto e = out.find('e');
  if (e != std::string::npos) {
    const int exponent = std::atoi(out.c_str() + e + 1);
    if (exponent >= 0 && exponent < 16) {  // 1000000.0, not 1e+06
      res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
      out.assign(buf, res.ptr);
    } else {  // 1e-5 and 1e300, not 1e-05 and 1e+300
      out = out.substr(0, e + 1) + (exponent < 0 ? "-" : "") + std::to_string(std::abs(exponent));
    }
  }
  // TOML tells floats from integers by a fraction or an exponent.
  if (out.find_first_of(".eEn") == std::string::npos) out += ".0";
  if (token[0] == '+' && out[0] != '-') out = "+" + out;
  return out;
}

}  // namespace

std::string shortest_toml_floats(const std::string& text) {
  enum class Mode { Normal, Basic, Literal, MultiBasic, MultiLiteral };
  Mode mode = Mode::Normal;
  std::vector<char> open;  // '[' and '{' of the value being read
  bool key_position = true;
  std::string out;
  out.reserve(text.size());
  const auto starts = [&](size_t i, const char* s) { return text.compare(i, std::char_traits<char>::length(s), s) == 0; };
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (mode) {
      case Mode::Basic:
        out += c;
        if (c == '\\' && i + 1 < text.size()) out += text[++i];
        else if (c == '"' || c == '\n') mode = Mode::Normal;
        ++i;
        continue;
      case Mode::Literal:
        out += c;
        if (c == '\'' || c == '\n') mode = Mode::Normal;
        ++i;
        continue;
      case Mode::MultiBasic:
        if (c == '\\' && i + 1 < text.size()) {
          out += text.substr(i, 2);
          i += 2;
        } else if (starts(i, "\"\"\"")) {
          out += "\"\"\"";
          i += 3;
          while (i < text.size() && text[i] == '"') out += text[i++];  // quotes just before the closing ones
          mode = Mode::Normal;
        } else {
          out += text[i++];
        }
        continue;
      case Mode::MultiLiteral:
        if (starts(i, "'''")) {
          out += "'''";
          i += 3;
          while (i < text.size() && text[i] == '\'') out += text[i++];
          mode = Mode::Normal;
        } else {
          out += text[i++];
        }
        continue;
      case Mode::Normal: break;
    }
    if (c == '"') {
      mode = starts(i, "\"\"\"") ? Mode::MultiBasic : Mode::Basic;
      const size_t n = mode == Mode::MultiBasic ? 3 : 1;
      out += text.substr(i, n);
      i += n;
      continue;
    }
    if (c == '\'') {
      mode = starts(i, "'''") ? Mode::MultiLiteral : Mode::Literal;
      const size_t n = mode == Mode::MultiLiteral ? 3 : 1;
      out += text.substr(i, n);
      i += n;
      continue;
    }
    if (c == '#') {  // a comment runs to the end of the line
      while (i < text.size() && text[i] != '\n') out += text[i++];
      continue;
    }
    if (key_position) {
      if (c == '=') key_position = false;
      if (c == '}' && !open.empty() && open.back() == '{') {  // an empty inline table
        open.pop_back();
        key_position = false;
      }
      if (c == '\n' && open.empty()) key_position = true;
      out += c;
      ++i;
      continue;
    }
    if (c == '[' || c == '{') {
      open.push_back(c);
      if (c == '{') key_position = true;  // an inline table starts with a key
    } else if ((c == ']' || c == '}') && !open.empty()) {
      open.pop_back();
    } else if (c == ',' && !open.empty() && open.back() == '{') {
      key_position = true;
    } else if (c == '\n' && open.empty()) {
      key_position = true;
    } else if (token_char(c) && (out.empty() || !token_char(out.back()))) {
      size_t end = i;
      while (end < text.size() && token_char(text[end])) ++end;
      out += shortest_float(text.substr(i, end - i));
      i = end;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

std::string format_toml(const toml::table& table) {
  std::ostringstream os;
  os << toml::toml_formatter(table);
  return shortest_toml_floats(os.str());
}

}  // namespace sapling
