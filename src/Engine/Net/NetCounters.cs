namespace KtConnect.Engine.Net;

/// <summary>What the stack dropped or did, for diagnostics and tests. Updated with Interlocked.</summary>
public sealed class NetCounters
{
    public long PacketsIn;
    public long PacketsOut;
    public long Malformed;
    public long Fragments;
    public long UnsupportedProtocol;
    public long NotForUs;
    public long TcpResetsSent;
    public long TcpFlowsAccepted;
    public long TcpFlowsRefused;
    public long TcpFlowsRejectedByLimit;
    public long TcpRetransmits;
    public long TcpFastRetransmits;
    public long TcpOutOfOrderDropped;
    public long UdpToHandler;
    public long IcmpUnreachableSent;
    public long IcmpIgnored;

    public override string ToString() =>
        $"in={PacketsIn} out={PacketsOut} malformed={Malformed} fragments={Fragments} rst={TcpResetsSent} " +
        $"accepted={TcpFlowsAccepted} refused={TcpFlowsRefused} limited={TcpFlowsRejectedByLimit} rexmit={TcpRetransmits} " +
        $"fastrexmit={TcpFastRetransmits} udp={UdpToHandler} icmpUnreach={IcmpUnreachableSent}";
}
