-- Tables, strings and garbage collection; prints allocator-independent results.
local t = {}
for i = 1, 200000 do
  t[i] = { id = i, name = "item" .. i, tags = { i % 7, i % 11, i % 13 } }
end
local sum = 0
for _, v in ipairs(t) do sum = sum + v.tags[1] + v.tags[2] + v.tags[3] + #v.name end
print("sum", sum)
t = nil
collectgarbage("collect")
local parts = {}
for i = 1, 100000 do parts[#parts + 1] = string.rep("x", i % 100) .. i end
local s = table.concat(parts, ",")
print("len", #s)
local words = {}
for w in s:gmatch("x+(%d+)") do words[#words + 1] = tonumber(w) end
table.sort(words, function(a, b) return a > b end)
print("words", #words, words[1], words[#words])
local m = {}
for i = 1, 50000 do m["k" .. i] = string.rep("v", i % 500) end
local total = 0
for _, v in pairs(m) do total = total + #v end
print("total", total)
