# A stand-in for HTCondor's test-suite CondorUtils.pm: the two helpers its DAGMan tests use.
package CondorUtils;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(runcmd fullchomp);

sub runcmd { my ($cmd) = @_; my $rc = system($cmd); return $rc == 0; }
sub fullchomp { $_[0] =~ s/[\r\n]+$//; return $_[0]; }

1;
