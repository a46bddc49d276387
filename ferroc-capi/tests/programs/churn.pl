# Hashes, arrays, strings, sorting and regular expressions; prints allocator-independent sums.
use strict;
use warnings;

my %h;
for my $i (1 .. 50000) {
    $h{"key$i"} = "value" x ($i % 40) . $i;
}
my @keys = sort { $h{$a} cmp $h{$b} } keys %h;
print scalar(@keys), " ", unpack("%32C*", join ",", @keys[0 .. 999]), "\n";
my $text = join " ", map { "word$_" } 1 .. 100000;
my $count = () = $text =~ /word\d*7\b/g;
print "matches $count\n";
my @arrays = map { [ (1) x ($_ % 500) ] } 1 .. 20000;
my $sum = 0;
$sum += scalar(@$_) for @arrays;
print "sum $sum\n";
undef %h;
undef @arrays;
my $s = "";
$s .= chr(65 + $_ % 26) for 1 .. 500000;
print length($s), " ", unpack("%32C*", $s), "\n";
